//! How product tables are written: the Parquet codec and properties of every staged and
//! published data file, in one place so staging, publishing and the benchmark that chose them
//! write the same files.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::create_hashes_with_hasher;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use datafusion::parquet::schema::types::ColumnPath;

meshwork_core::keyword_enum! {
    /// The compression of a product table's Parquet files.
    pub enum Codec ("parquet codec") {
        /// Uncompressed: the fastest to scan from memory, the largest on disk and on the wire.
        None => "none",
        /// Snappy, delta-rs's and Spark's default.
        Snappy => "snappy",
        /// LZ4 without framing (Parquet's `LZ4_RAW`).
        Lz4Raw => "lz4_raw",
        /// Zstandard at level 1.
        Zstd1 => "zstd1",
    }
}

/// The codec product tables are written with: LZ4_RAW scanned faster than Snappy in every
/// statement measured on TPC-H SF1 `lineitem` (`SELECT *` 21% faster, its longest string column
/// 34%, Q1 14%, Q6 7%) at the same size (211 vs 208 MB), close to uncompressed scans (370 MB);
/// ZSTD(1) was 24% smaller than Snappy and the slowest to scan. Every Parquet reader Meshwork's tables meet (Spark 3.3+, DuckDB,
/// arrow-rs and pyarrow, so deltalake-python and Polars) reads it. See docs/benchmarks.md,
/// "Product table codec" (`meshwork-bench codec`).
pub const DEFAULT_CODEC: Codec = Codec::Lz4Raw;

impl Codec {
    fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::UNCOMPRESSED,
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4Raw => Compression::LZ4_RAW,
            Codec::Zstd1 => Compression::ZSTD(ZstdLevel::try_new(1).expect("1 is a valid zstd level")),
        }
    }
}

/// The Parquet writer properties of a product table's files written with `codec`, every column
/// dictionary-encoded first (the writer falls back to plain encoding once a column chunk's
/// dictionary passes 1 MiB).
pub fn writer_properties(codec: Codec) -> WriterProperties {
    builder(codec).build()
}

/// The writer properties of a table whose first rows are `sample` (its first [`SAMPLE_ROWS`]
/// rows are looked at): as [`writer_properties`], with dictionary encoding turned off for the
/// top-level, non-nested columns that [`mostly_distinct`] finds in the sample.
///
/// Why: Parquet writers try a dictionary on every column and fall back to plain values only
/// once it passes 1 MiB, so a column of mostly distinct values (keys, ids, timestamps, free
/// text) starts every column chunk with a 1 MiB dictionary page that serves only its first
/// pages, and every read of any page of the chunk decompresses it first. The rule judges from
/// the first rows, so a column of a few hundred thousand values spread evenly (that a dictionary
/// over a whole row group would still hold) is written plain too: larger, not slower to read.
/// Measured on a 10M-row table: a point query by id took 2.26 ms with the dictionary page and
/// 1.17 ms without it (docs/benchmarks.md, "Dictionaries only where they pay").
pub fn writer_properties_for(codec: Codec, sample: &[RecordBatch]) -> WriterProperties {
    let mut builder = builder(codec);
    let Some(schema) = sample.first().map(RecordBatch::schema) else { return builder.build() };
    for (i, field) in schema.fields().iter().enumerate() {
        if field.data_type().is_nested() {
            continue;
        }
        let column: Vec<&ArrayRef> = sample.iter().map(|b| b.column(i)).collect();
        if mostly_distinct(&column) {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    builder.build()
}

/// How many leading rows [`writer_properties_for`] looks at.
pub(crate) const SAMPLE_ROWS: usize = 65_536;

/// Whether at least half of the non-null values among a column's first [`SAMPLE_ROWS`] rows are
/// distinct (by a 64-bit hash of each value; a collision only makes a column look less
/// distinct). Too few values (< 1,024) to tell, or a type the hash does not cover, answer
/// `false`: the writer's default stands.
pub(crate) fn mostly_distinct(column: &[&ArrayRef]) -> bool {
    let mut left = SAMPLE_ROWS;
    let column: Vec<ArrayRef> = column
        .iter()
        .map_while(|array| {
            let take = array.len().min(left);
            left -= take;
            (take > 0).then(|| array.slice(0, take))
        })
        .collect();
    let values: usize = column.iter().map(|a| a.len() - a.null_count()).sum();
    if values < 1024 {
        return false;
    }
    let state = std::hash::RandomState::new();
    let mut seen = std::collections::HashSet::with_capacity(values);
    for array in &column {
        let mut hashes = vec![0u64; array.len()];
        if create_hashes_with_hasher([array], &state, &mut hashes).is_err() {
            return false;
        }
        seen.extend(hashes.iter().enumerate().filter(|(row, _)| array.is_valid(*row)).map(|(_, h)| *h));
    }
    seen.len() * 2 >= values
}

/// Rows per data page (parquet-rs writes 20,480 by default; it closes a page once it holds at
/// least this many rows, checked every 1,024 rows). A page is the smallest unit
/// a reader decompresses, and the page index lets it pick the pages a predicate needs, so a
/// point query (`WHERE id = 42`) decompresses one page per column it reads: with 4,096-row pages
/// that is a fifth of the work. Measured on a 10M-row table served to 8 concurrent clients,
/// server CPU per Flight SQL point query 6.0–6.2 → 4.2–4.8 ms; TPC-H SF1 unchanged within noise
/// and `lineitem` 2% larger (docs/benchmarks.md, "Pages of 4,096 rows").
pub const PAGE_ROWS: usize = 4096;

fn builder(codec: Codec) -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_created_by(CREATED_BY.to_owned())
        .set_compression(codec.compression())
        .set_data_page_row_count_limit(PAGE_ROWS)
}

/// The writer named in every file's footer, in the `<application> version <version> (build
/// <build>)` shape parquet-java's `VersionParser` reads: Spark, Hive and Trino trust the min/max
/// statistics of string columns only from a writer they can parse, and skip row groups by them.
pub const CREATED_BY: &str = concat!("meshwork version ", env!("CARGO_PKG_VERSION"), " (build delta-rs)");

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn ints(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
        Arc::new(Int64Array::from_iter(values))
    }

    #[test]
    fn a_column_is_mostly_distinct_when_half_its_values_are() {
        let unique = ints((0..4096).map(Some));
        let repeated = ints((0..4096).map(|i| Some(i % 100)));
        let half = ints((0..4096).map(|i| Some(i / 2)));
        let under_half = ints((0..4096).map(|i| Some(i / 3)));
        assert!(mostly_distinct(&[&unique]));
        assert!(!mostly_distinct(&[&repeated]));
        assert!(mostly_distinct(&[&half]));
        assert!(!mostly_distinct(&[&under_half]));
        // Counted over every batch of the sample, not per batch.
        let first = ints((0..2048).map(Some));
        let again = ints((0..2048).map(Some));
        let third = ints((0..2048).map(Some));
        assert!(!mostly_distinct(&[&first, &again, &third]));
        // Nulls are not values; too few values leave the default.
        // 1,024 distinct values among 3,072 nulls: distinct only if nulls are not counted.
        let sparse = ints((0..4096).map(|i| (i % 4 == 0).then_some(i)));
        assert!(mostly_distinct(&[&sparse]));
        // Only the first `SAMPLE_ROWS` rows are looked at.
        let long = ints((0..SAMPLE_ROWS as i64 * 3).map(|i| Some(if i < SAMPLE_ROWS as i64 { i % 10 } else { i })));
        assert!(!mostly_distinct(&[&long]));
        let few = ints((0..1000).map(Some));
        assert!(!mostly_distinct(&[&few]));
    }

    /// What a reader of a written file sees: pages of about `PAGE_ROWS` rows in every column (the
    /// writer checks the count every 1,024 rows), listed in the page index.
    #[test]
    fn data_pages_hold_about_page_rows_rows() {
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("category", DataType::Utf8, false)]));
        let rows = PAGE_ROWS * 4;
        let ids = ints((0..rows as i64).map(Some));
        let categories: ArrayRef = Arc::new(StringArray::from_iter_values((0..rows).map(|i| ["books", "games", "toys"][i % 3])));
        let batch = RecordBatch::try_new(schema.clone(), vec![ids, categories]).unwrap();
        let file = tempfile::tempfile().unwrap();
        let mut writer = ArrowWriter::try_new(file.try_clone().unwrap(), schema, Some(writer_properties_for(DEFAULT_CODEC, std::slice::from_ref(&batch)))).unwrap();
        // Written in small batches, as the build streams them: the limit is checked per batch.
        for start in (0..rows).step_by(1000) {
            writer.write(&batch.slice(start, 1000.min(rows - start))).unwrap();
        }
        writer.close().unwrap();
        let metadata = ParquetMetaDataReader::new().with_page_index_policy(PageIndexPolicy::Required).parse_and_finish(&file).unwrap();
        let offsets = metadata.offset_index().expect("a page index");
        for column in &offsets[0] {
            let firsts: Vec<i64> = column.page_locations().iter().map(|p| p.first_row_index).collect();
            assert!(firsts.len() >= 3, "{firsts:?}");
            let mut bounds = firsts.clone();
            bounds.push(rows as i64);
            assert!(bounds.windows(2).all(|w| w[1] - w[0] < (PAGE_ROWS + 1024) as i64), "pages of about {PAGE_ROWS} rows: {firsts:?}");
        }
    }

    #[test]
    fn dictionaries_are_turned_off_only_for_mostly_distinct_columns() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("category", DataType::Utf8, false)]));
        let ids = ints((0..4096).map(Some));
        let categories: ArrayRef = Arc::new(StringArray::from_iter_values((0..4096).map(|i| ["books", "games", "toys"][i % 3])));
        let batch = RecordBatch::try_new(schema, vec![ids, categories]).unwrap();
        let properties = writer_properties_for(Codec::Lz4Raw, &[batch]);
        assert!(!properties.dictionary_enabled(&ColumnPath::from("id")));
        assert!(properties.dictionary_enabled(&ColumnPath::from("category")));
        assert_eq!(properties.compression(&ColumnPath::from("id")), Compression::LZ4_RAW);
        // No sample (an empty build): the defaults.
        assert!(writer_properties_for(Codec::Lz4Raw, &[]).dictionary_enabled(&ColumnPath::from("id")));
    }
}
