-- Differential-privacy budgets: what each principal has spent of a product's budget in its
-- current fixed window (millionths of epsilon, so sums never drift), and when that window began.
CREATE TABLE privacy_budgets (
    principal TEXT COLLATE "C" NOT NULL,
    product TEXT COLLATE "C" NOT NULL,
    window_start TEXT COLLATE "C" NOT NULL,
    spent BIGINT NOT NULL,
    PRIMARY KEY (principal, product)
);
