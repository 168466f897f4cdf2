//! `-f/--format` and patronictl's `print_output`, rendered by `pgkeel_view` (shared with
//! the demo); this module only maps the command-line option onto it.

use serde_json::Value;

pub(crate) use pgkeel_view::output::{py_str, Align};

/// `-f/--format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Pretty,
    Tsv,
    Json,
    Yaml,
    Yml,
}

impl From<Format> for pgkeel_view::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Pretty => pgkeel_view::Format::Pretty,
            Format::Tsv => pgkeel_view::Format::Tsv,
            Format::Json => pgkeel_view::Format::Json,
            Format::Yaml => pgkeel_view::Format::Yaml,
            Format::Yml => pgkeel_view::Format::Yml,
        }
    }
}

/// `print_output(columns, rows, alignment, fmt, header)` ([`pgkeel_view::print_output`]).
pub(crate) fn print_output(
    columns: &[(&str, Align)],
    rows: &[Vec<Value>],
    fmt: Format,
    header: &str,
) -> String {
    pgkeel_view::print_output(columns, rows, fmt.into(), header)
}
