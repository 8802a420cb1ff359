//! How product tables are written: the Parquet codec and properties of every staged and
//! published data file, in one place so staging, publishing and the benchmark that chose them
//! write the same files.

use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

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

/// The Parquet writer properties of a product table's files written with `codec`.
pub fn writer_properties(codec: Codec) -> WriterProperties {
    WriterProperties::builder().set_created_by(CREATED_BY.to_owned()).set_compression(codec.compression()).build()
}

/// The writer named in every file's footer, in the `<application> version <version> (build
/// <build>)` shape parquet-java's `VersionParser` reads: Spark, Hive and Trino trust the min/max
/// statistics of string columns only from a writer they can parse, and skip row groups by them.
pub const CREATED_BY: &str = concat!("meshwork version ", env!("CARGO_PKG_VERSION"), " (build delta-rs)");
