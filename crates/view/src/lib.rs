//! pgkeel's text output as patronictl prints it, for the CLI (`pgkeel list`, `topology`
//! and the verbs that show the cluster first) and the demo: the member table
//! ([`members::output_members`]), `print_output`'s formats ([`output`]), the prettytable
//! box ([`pretty_table`]) and Python-style JSON and YAML ([`pyfmt`]).
//!
//! Pure formatting: no I/O, no HTTP. The input is the cluster as `GET /cluster` shows it.

pub mod members;
pub mod output;
pub mod pretty_table;
pub mod pyfmt;

pub use members::{output_members, View};
pub use output::{print_output, Align, Format};
