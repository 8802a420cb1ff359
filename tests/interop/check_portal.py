"""Checks the web portal end to end in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Python selenium) against `meshwork serve`.

Usage: check_portal.py PATH/TO/meshwork [--screenshots DIR]

Creates the example mesh in a temporary directory, applies it, issues API tokens for two
principals (ana: EU analyst, personal data masked; sam: sales member; mia, who may not read
finance.customer_value; fred, of the finance team that owns it) and starts `meshwork serve` on free ports. One function per scenario, each with a fresh browser signed in through
the sign-in form (`signed_in`):

- sign in as two principals, each seeing their own name; a bad token is refused;
- the search page finds a product, and never lists (nor counts in a facet) one the principal
  may not read (fred and marketing.campaign_roi); a discoverable one is listed as its card
  (mia and finance.customer_value), without quality or SLO and not counted in their facets;
- the console returns the rows `meshwork query --as NAME` returns, shows a positioned error
  and selects its position in the editor, downloads CSV, cancels a running query;
- the product page shows the viewer's masked columns and the lineage graph; the governance
  dashboard lists policies;
- access requests: mia opens a Postgres connection (psycopg) and cannot read
  finance.customer_value (discoverable); in the portal she sees its card and requests access;
  fred, an owner, approves on /access in a second browser; her console and the SAME Postgres
  connection now read it; fred revokes and both get not found again;
- aggregate-only reads (hr.salaries, hr.survey): rows refused with the rule, small groups left
  out, a private answer's cost shown, the product page saying how ana reads each;
- a state-changing POST with the session cookie but without the CSRF token is refused with 403;
- every page carries the Content-Security-Policy, and the browser logs no CSP violation.

Saves screenshots of the search page, a product page, the governance dashboard, /access with a
pending request and the console (1280 px wide) to `--screenshots` (default: docs/images).
Prints one line per check and `N passed, N failed`.
"""

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psycopg
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from served import Checks, Server, meshwork, reference, token_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 1280, 960
WAIT = 30

check = Checks()


class Portal:
    """The served mesh: its address, tokens, and where browsers download to."""

    def __init__(self, binary, mesh, server, tokens, downloads, screenshots):
        self.binary, self.mesh, self.server = binary, mesh, server
        self.base = f"http://127.0.0.1:{server.http_port}"
        self.tokens, self.downloads, self.screenshots = tokens, downloads, screenshots

    def url(self, path):
        return self.base + path


def browser(downloads):
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={WIDTH},{HEIGHT}", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


# Every browser's console log, checked for CSP violations at the end.
BROWSER_LOGS = []


@contextmanager
def signed_in(portal, principal):
    """A fresh browser, signed in as `principal` through the sign-in form."""
    driver = browser(portal.downloads)
    try:
        sign_in(driver, portal, portal.tokens[principal])
        WebDriverWait(driver, WAIT).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".who strong")))
        yield driver
    finally:
        BROWSER_LOGS.extend(driver.get_log("browser"))
        driver.quit()


def sign_in(driver, portal, token, next_path="/"):
    driver.get(portal.url(f"/signin?next={urllib.parse.quote(next_path)}"))
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    field.submit()


def wait_for(driver, css):
    return WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def set_editor(driver, sql):
    editor = driver.find_element(By.ID, "sql")
    editor.clear()
    editor.send_keys(sql)


def run_query(driver, sql):
    """Types `sql` in the console, runs it, and waits for a result or an error."""
    # htmx swaps the children of #results: wait for the previous result to leave the page, or
    # the wait below could return it (and its text would pass for this query's)
    previous = driver.find_elements(By.CSS_SELECTOR, "#results > *")
    set_editor(driver, sql)
    driver.find_element(By.CSS_SELECTOR, "#run button[type=submit]").click()
    for element in previous:
        WebDriverWait(driver, WAIT).until(EC.staleness_of(element))
    return wait_for(driver, "#results table.data, #results .banner")


def table_rows(driver):
    return [tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td")) for row in driver.find_elements(By.CSS_SELECTOR, "#results table.data tbody tr")]


def text_reference(portal, principal, sql):
    """`meshwork query --as` rows as the console shows them (NULL for nulls)."""
    return [tuple("NULL" if v is None else v for v in row) for row in reference(portal.binary, portal.mesh, principal, sql)]


# --- scenarios -------------------------------------------------------------------------------


def scenario_two_principals_sign_in(portal):
    for principal in ("ana", "sam"):
        with signed_in(portal, principal) as driver:
            who = driver.find_element(By.CSS_SELECTOR, ".who strong").text
            check(f"sign-in: {principal} is signed in as themself", who == principal, f"header says {who!r}")
            cookie = driver.get_cookie("meshwork_session")
            check(f"sign-in: {principal}'s session cookie is HttpOnly and SameSite", bool(cookie) and cookie.get("httpOnly") and cookie.get("sameSite") in ("Lax", "Strict"), f"{cookie}")
            driver.find_element(By.CSS_SELECTOR, ".who button").click()
            wait_for(driver, "#token")
            driver.get(portal.url("/console"))
            check(f"sign-out: {principal}'s console needs signing in again", "/signin" in driver.current_url, driver.current_url)


def scenario_bad_token_refused(portal):
    driver = browser(portal.downloads)
    try:
        sign_in(driver, portal, "mw_0000000000000000_" + "0" * 48)
        banner = wait_for(driver, ".banner.error")
        check("sign-in: a bad token is refused", "not accepted" in banner.text and driver.get_cookie("meshwork_session") is None, banner.text)
    finally:
        BROWSER_LOGS.extend(driver.get_log("browser"))
        driver.quit()


def scenario_search(portal):
    with signed_in(portal, "ana") as driver:
        driver.get(portal.url("/"))
        box = driver.find_element(By.ID, "q")
        box.send_keys("customers")
        box.submit()
        wait_for(driver, ".results")
        ids = [c.text for c in driver.find_elements(By.CSS_SELECTOR, ".results .meta code")]
        check("search: `customers` finds sales.customers", "sales.customers" in ids, f"{ids}")
        save_screenshot(driver, portal, "portal-search.png")
    # fred may not read marketing.campaign_roi, which is not discoverable: never listed, never
    # counted in a facet.
    with signed_in(portal, "fred") as driver:
        driver.get(portal.url("/?q=campaign"))
        wait_for(driver, ".results")
        ids = [c.text for c in driver.find_elements(By.CSS_SELECTOR, ".results .meta code")]
        counts = [int(c.text) for c in driver.find_elements(By.CSS_SELECTOR, ".facets fieldset:first-of-type .count")]
        check("search: fred finds the campaigns he may read", "marketing.campaigns" in ids, f"{ids}")
        check("search: fred's results hold no product hidden from him", "marketing.campaign_roi" not in ids, f"{ids}")
        check("search: fred's domain facet counts only his results", sum(counts) == len(ids), f"{counts} for {ids}")
    # mia may not read finance.customer_value, which is discoverable: listed as its card, without
    # quality or SLO, and not counted in the quality facet.
    with signed_in(portal, "mia") as driver:
        driver.get(portal.url("/?q=customer"))
        wait_for(driver, ".results")
        results = driver.find_elements(By.CSS_SELECTOR, ".results li")
        cards = [r.find_element(By.CSS_SELECTOR, ".meta code").text for r in results if "card: you may request access" in r.text]
        check("search: mia sees finance.customer_value as its card", cards == ["finance.customer_value"], f"{[r.text for r in results]}")
        card_text = next((r.text for r in results if "finance.customer_value" in r.text), "")
        check("search: the card shows no quality or SLO", "quality" not in card_text and "SLO" not in card_text, card_text)
        quality = driver.find_elements(By.XPATH, "//fieldset[legend[contains(., 'Quality')]]//span[contains(@class, 'count')]")
        check("search: the quality facet counts only what mia reads", sum(int(c.text) for c in quality) == len(results) - 1, f"{[c.text for c in quality]} for {len(results)} hits")


def scenario_console_rows_and_error(portal):
    sql = "SELECT customer_id, full_name, email, region FROM sales.customers ORDER BY customer_id LIMIT 20"
    shown = {}
    for principal in ("ana", "sam"):
        with signed_in(portal, principal) as driver:
            driver.get(portal.url("/console"))
            run_query(driver, sql)
            rows = table_rows(driver)
            expected = text_reference(portal, principal, sql)
            shown[principal] = rows
            check(f"console: {principal}'s rows are what `meshwork query --as {principal}` returns", rows == expected, f"{rows[:3]} vs {expected[:3]}")
            types = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#results th .type")]
            check(f"console: {principal} sees the Arrow type of every column", len(types) == 4 and types[0] == "Int64", f"{types}")
            if principal == "ana":
                save_screenshot(driver, portal, "portal-console.png")
    check("console: ana and sam see different rows (masks and row filters)", shown.get("ana") != shown.get("sam"))

    with signed_in(portal, "ana") as driver:
        driver.get(portal.url("/console"))
        run_query(driver, "SELECT customer_id\nFROM sales.customers\nWHER customer_id > 1")
        banner = wait_for(driver, "#results .banner.error")
        line = banner.get_attribute("data-sql-line")
        check("console: an error names its line", line == "3", f"data-sql-line={line!r}: {banner.text}")
        check("console: the error shows the statement's line", "WHER" in banner.find_element(By.CSS_SELECTOR, "pre.position").text, banner.text)
        selected = driver.execute_script("const e = document.getElementById('sql'); return e.value.substring(e.selectionStart, e.selectionEnd);")
        check("console: the editor selects the error's position", selected.startswith("WHER") or selected.startswith("customer_id"), f"selected {selected!r}")
    with signed_in(portal, "mia") as driver:
        driver.get(portal.url("/console"))
        hidden = run_query(driver, "SELECT * FROM finance.customer_value").text.replace("customer_value", "X")
        missing = run_query(driver, "SELECT * FROM finance.no_such_value").text.replace("no_such_value", "X")
        check("console: a product mia may not read reads like a missing one", hidden == missing and "not found" in hidden, f"{hidden!r} vs {missing!r}")


def scenario_aggregate_only(portal):
    """ana reads hr.salaries only in aggregate and hr.survey with differential privacy (the
    query crate's fixture products, added to the example mesh): the console refuses rows,
    suppresses small groups, tells what a private answer cost, and the product page says how
    she reads it."""
    with signed_in(portal, "ana") as driver:
        driver.get(portal.url("/console"))
        refused = run_query(driver, "SELECT * FROM hr.salaries").text
        check("console: rows of an aggregate-only product are refused with the rule", "readable only in aggregate" in refused and "its rows would reach the result" in refused, refused)
        oracle = run_query(driver, "SELECT count(*) FROM hr.salaries WHERE CAST(city AS INT) > 0").text
        check("console: an error oracle is refused before anything runs", "can fail on some rows" in oracle, oracle)
        run_query(driver, "SELECT department, count(*) AS n FROM hr.salaries GROUP BY department ORDER BY department")
        rows = table_rows(driver)
        check("console: groups under 5 rows are left out", rows == [("eng", "18"), ("hr", "5"), ("sales", "12")], rows)
        run_query(driver, "SELECT count(*) AS n FROM hr.survey")
        banners = " ".join(b.text for b in driver.find_elements(By.CSS_SELECTOR, "#results .banner"))
        check("console: a private answer tells what it cost", "Private answer:" in banners and "ε 0.5 spent" in banners, banners)
        driver.get(portal.url("/products/hr.salaries"))
        access = wait_for(driver, "#aggregate-only").text
        check("product page: ana is told she reads it only in aggregate", "only in aggregate" in access and "fewer than 5 rows" in access, access)
        driver.get(portal.url("/products/hr.survey"))
        private = wait_for(driver, "#private-answers").text
        check("product page: private answers and the budget are shown", "ε 0.5" in private and "1.5" in private, private)


def scenario_download_csv(portal):
    sql = "SELECT order_id, status FROM sales.orders ORDER BY order_id LIMIT 50"
    for old in portal.downloads.glob("result*.csv"):
        old.unlink()
    with signed_in(portal, "ana") as driver:
        driver.get(portal.url("/console"))
        run_query(driver, sql)
        driver.find_element(By.XPATH, "//button[normalize-space()='Download CSV']").click()
        target = portal.downloads / "result.csv"
        for _ in range(WAIT * 5):
            if target.exists() and not list(portal.downloads.glob("*.crdownload")):
                break
            time.sleep(0.2)
        rows = [tuple(r) for r in csv.reader(io.StringIO(target.read_text()))][1:] if target.exists() else None
        expected = [tuple(v for v in row) for row in reference(portal.binary, portal.mesh, "ana", sql)]
        check("console: the CSV download holds the result", rows == expected, f"{rows[:3] if rows else rows} vs {expected[:3]}")


def scenario_cancel(portal):
    with signed_in(portal, "ana") as driver:
        driver.get(portal.url("/console"))
        set_editor(driver, "SELECT count(*) FROM range(1, 1000000000000) a WHERE a.value % 7 = 3")
        driver.find_element(By.CSS_SELECTOR, "#run button[type=submit]").click()
        cancel = wait_for(driver, "button.cancel")
        cancel.click()
        banner = wait_for(driver, "#results .banner")
        check("console: a running query is cancelled", "Query cancelled" in banner.text, banner.text)
        check("console: the Cancel button hides once the query ended", WebDriverWait(driver, WAIT).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "button.cancel"))))


def scenario_product_and_governance_pages(portal):
    with signed_in(portal, "ana") as driver:
        driver.get(portal.url("/products/sales.customers"))
        wait_for(driver, "#contract")
        masked = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#contract .badge.masked")]
        check("product page: ana's masked columns are marked", len(masked) >= 1 and all(m.startswith("masked (") for m in masked), f"{masked}")
        nodes = driver.find_elements(By.CSS_SELECTOR, "svg.lineage-graph a.lineage-node")
        check("product page: the lineage graph is drawn with links", len(nodes) >= 2, f"{len(nodes)} nodes")
        save_screenshot(driver, portal, "portal-product.png", full_page=True)
        driver.get(portal.url("/governance"))
        wait_for(driver, "main h1")
        rows = driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")
        check("governance: the dashboard lists policies", len(rows) > 0, f"{len(rows)} rows")
        save_screenshot(driver, portal, "portal-governance.png")


def pg_connect(portal, principal):
    return psycopg.connect(host="127.0.0.1", port=portal.server.pg_port, user="portal-check", password=portal.tokens[principal], dbname="meshwork", connect_timeout=10, autocommit=True)


def pg_rows(conn, sql):
    """The rows of `sql` as text, or the error's message."""
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return [tuple("NULL" if v is None else str(v) for v in row) for row in cursor.fetchall()]
    except psycopg.Error as err:
        return f"error: {err}"


def scenario_access_request_approve_revoke(portal):
    sql = "SELECT customer_id, region, segment, orders FROM finance.customer_value ORDER BY customer_id LIMIT 20"
    # Opened before anything else: the grant must reach this very connection.
    conn = pg_connect(portal, "mia")
    try:
        before = pg_rows(conn, sql)
        check("access: mia's Postgres connection cannot read finance.customer_value at first", isinstance(before, str) and ("not found" in before.lower() or "does not exist" in before), f"{before}")
        with signed_in(portal, "mia") as mia:
            mia.get(portal.url("/products/finance.customer_value"))
            wait_for(mia, "#request-form")
            check("access: mia sees the card, not the product", not mia.find_elements(By.ID, "contract") and "finance.customer_value" in mia.find_element(By.CSS_SELECTOR, "dl.facts").text)
            mia.find_element(By.ID, "purpose").send_keys("churn model for North America")
            mia.find_element(By.CSS_SELECTOR, "#request-form button[type=submit]").click()
            pending = wait_for(mia, "#pending")
            check("access: the card shows the request pending", "Request pending" in pending.text, pending.text)
            mia.get(portal.url("/console"))
            shown = run_query(mia, sql).text
            check("access: mia's console does not read it while the request is pending", "not found" in shown, shown)
            with signed_in(portal, "fred") as fred:
                fred.get(portal.url("/access"))
                request = wait_for(fred, "#to-decide article.access-request")
                check("access: fred sees mia's pending request", "mia" in request.text and "churn model" in request.text, request.text)
                save_screenshot(fred, portal, "portal-access.png")
                request.find_element(By.TAG_NAME, "textarea").send_keys("fine for the churn model")
                request.find_element(By.XPATH, ".//button[normalize-space()='Approve']").click()
                granted = wait_for(fred, "#granted table.grants")
                check("access: the approval is a grant listed for fred", "mia" in granted.text and "finance.customer_value" in granted.text, granted.text)

                expected = text_reference(portal, "mia", sql)
                mia.get(portal.url("/console"))
                run_query(mia, sql)
                rows = table_rows(mia)
                check("access: after the approval mia's console returns the rows", len(expected) > 0 and rows == expected, f"{rows[:3]} vs {expected[:3]}")
                after = pg_rows(conn, sql)
                check("access: the Postgres connection opened before the approval now reads it", after == expected, f"{after if isinstance(after, str) else after[:3]} vs {expected[:3]}")
                mia.get(portal.url("/products/finance.customer_value"))
                wait_for(mia, "#contract")
                check("access: mia's product page shows her grant", "churn model" in mia.find_element(By.ID, "access").text)

                fred.get(portal.url("/access"))
                grants = wait_for(fred, "#granted table.grants")
                grants.find_element(By.XPATH, ".//button[normalize-space()='Revoke']").click()
                WebDriverWait(fred, WAIT).until(EC.staleness_of(grants))
                wait_for(fred, "#granted")
                check("access: the revoked grant is gone from fred's list", not fred.find_elements(By.CSS_SELECTOR, "#granted table.grants"))
            mia.get(portal.url("/console"))
            shown = run_query(mia, sql).text
            check("access: after the revocation mia's console gets not found", "not found" in shown, shown)
        revoked = pg_rows(conn, sql)
        check("access: the same Postgres connection gets not found after the revocation", isinstance(revoked, str) and ("not found" in revoked.lower() or "does not exist" in revoked), f"{revoked}")
    finally:
        conn.close()


def scenario_csrf_refused(portal):
    with signed_in(portal, "ana") as driver:
        session = driver.get_cookie("meshwork_session")["value"]
        page = driver.page_source
    status, body = post_form(portal, "/console/run", {"sql": "SELECT 1"}, session)
    check("csrf: a POST with the session cookie but no token is refused with 403", status == 403, f"{status}: {body[:200]!r}")
    status, _ = post_form(portal, "/signout", {}, session)
    check("csrf: sign-out without the token is refused with 403", status == 403, f"{status}")
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    status, _ = post_form(portal, "/console/run", {"sql": "SELECT 1", "csrf": token}, session, origin="https://evil.example")
    check("csrf: the right token from another site's page is refused with 403", status == 403, f"{status}")
    status, _ = post_form(portal, "/console/run", {"sql": "SELECT 1", "csrf": token}, session)
    check("csrf: the same POST with the token is accepted", status == 200, f"{status}")


def scenario_security_headers(portal):
    for path in ("/signin", "/assets/portal.css", "/nope-page-that-is-not-there", "/assets/nope.js"):
        request = urllib.request.Request(portal.url(path))
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                headers = response.headers
        except urllib.error.HTTPError as err:
            headers = err.headers
        if path == "/nope-page-that-is-not-there":
            continue  # the API's JSON 404 for unknown addresses, not a portal page
        csp = headers.get("Content-Security-Policy", "")
        check(f"headers: {path} has the CSP", "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp, csp)
        check(f"headers: {path} forbids framing and sniffing", headers.get("X-Frame-Options") == "DENY" and headers.get("X-Content-Type-Options") == "nosniff")
    violations = [entry for entry in BROWSER_LOGS if "Content Security Policy" in entry.get("message", "") or "Content-Security-Policy" in entry.get("message", "")]
    check("headers: the browser logged no CSP violation on any page", not violations, json.dumps(violations[:3]))
    errors = [entry for entry in BROWSER_LOGS if entry.get("level") == "SEVERE" and "favicon" not in entry.get("message", "") and "status of 4" not in entry.get("message", "")]
    check("headers: the browser logged no script error", not errors, json.dumps(errors[:3]))


# --- helpers ---------------------------------------------------------------------------------


def post_form(portal, path, fields, session, origin=None):
    request = urllib.request.Request(portal.url(path), data=urllib.parse.urlencode(fields).encode(), method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Cookie", f"meshwork_session={session}")
    if origin:
        request.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def save_screenshot(driver, portal, name, full_page=False):
    """Saves the viewport, 1280 px wide; `full_page`: the whole page's height (at most 4000 px)."""
    if portal.screenshots is None:
        return
    portal.screenshots.mkdir(parents=True, exist_ok=True)
    path = portal.screenshots / name
    if full_page:
        height = min(driver.execute_script("return document.documentElement.scrollHeight;"), 4000)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.save_screenshot(str(path))
    finally:
        if full_page:
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    check(f"screenshot: {name} saved", path.exists() and path.stat().st_size > 0)


SCENARIOS = [
    scenario_two_principals_sign_in,
    scenario_bad_token_refused,
    scenario_search,
    scenario_console_rows_and_error,
    scenario_aggregate_only,
    scenario_download_csv,
    scenario_cancel,
    scenario_product_and_governance_pages,
    scenario_access_request_approve_revoke,
    scenario_csrf_refused,
    # Last: it reads every browser's log.
    scenario_security_headers,
]


def ran(scenario, portal):
    """Runs one scenario for `Checks.attempt`: an exception (a missing element, a timeout) fails it."""
    scenario(portal)
    return True, ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--screenshots", default=str(ROOT / "docs/images"), help="where to save screenshots; `none` saves none")
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not Path(tool).exists():
            sys.exit(f"error: {tool} is missing; install Debian's chromium and chromium-driver")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mesh = tmp / "mesh"
        subprocess.run([binary, "init", str(mesh), "--example", "--orders", "2000", "--seed", "42"], check=True, capture_output=True)
        # The aggregate-only and private products of the query crate's tests (domain `hr`).
        shutil.copytree(ROOT / "crates/query/tests/fixtures/aggregate", mesh, dirs_exist_ok=True)
        meshwork(binary, mesh, "apply")
        tokens = {name: token_for(binary, mesh, name)["token"] for name in ("ana", "sam", "mia", "fred")}
        downloads = tmp / "downloads"
        downloads.mkdir()
        server = Server(binary, mesh, tmp / "serve.log")
        screenshots = None if args.screenshots == "none" else Path(args.screenshots)
        portal = Portal(binary, mesh, server, tokens, downloads, screenshots)
        try:
            for scenario in SCENARIOS:
                print(f"-- {scenario.__name__.removeprefix('scenario_').replace('_', ' ')}")
                check.attempt(f"{scenario.__name__} ran to its end", lambda: ran(scenario, portal))
        finally:
            code = server.stop()
            if check.failed:
                print(server.log_tail(3000))
        check("serve: stopped cleanly on SIGTERM", code == 0, f"exit code {code}")
    sys.exit(check.summary())


if __name__ == "__main__":
    main()
