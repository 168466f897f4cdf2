//! patronictl's `print_output`: a `prettytable` with a title over the top border
//! (`PatronictlPrettyTable`), or `tsv`, `json` and `yaml` renderings of the same rows.

use serde_json::Value;

pub use crate::pretty_table::Align;
use crate::pyfmt::{json_dumps_ordered, yaml_dump};

/// patronictl's `-f/--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pretty,
    Tsv,
    Json,
    Yaml,
    Yml,
}

/// Python's `str(v)` for the values a row holds.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(b) => (if *b { "True" } else { "False" }).into(),
        other => other.to_string(),
    }
}

/// The `prettytable` box, with a newline.
pub fn pretty(title: &str, columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let table = crate::pretty_table::Table {
        title,
        columns: columns.to_vec(),
        rows: rows.to_vec(),
    };
    table.render() + "\n"
}

/// `print_output(columns, rows, alignment, fmt, header)` for json/yaml/tsv, and pretty with
/// `header` as the title. With a header, empty values are left out of json and yaml.
pub fn print_output(
    columns: &[(&str, Align)],
    rows: &[Vec<Value>],
    fmt: Format,
    header: &str,
) -> String {
    let keep = |v: &Value| header.is_empty() || !py_str(v).is_empty();
    match fmt {
        Format::Json => {
            let items: Vec<String> = rows
                .iter()
                .map(|r| {
                    let fields: Vec<(String, Value)> = columns
                        .iter()
                        .zip(r)
                        .filter(|(_, v)| keep(v))
                        .map(|((c, _), v)| (c.to_string(), v.clone()))
                        .collect();
                    json_dumps_ordered(&fields)
                })
                .collect();
            format!("[{}]\n", items.join(", "))
        }
        Format::Yaml | Format::Yml => {
            let list: Vec<Value> = rows
                .iter()
                .map(|r| {
                    Value::Object(
                        columns
                            .iter()
                            .zip(r)
                            .filter(|(_, v)| keep(v))
                            .map(|((c, _), v)| (c.to_string(), v.clone()))
                            .collect(),
                    )
                })
                .collect();
            yaml_dump(&Value::Array(list)) + "\n"
        }
        Format::Tsv => {
            let mut out = String::new();
            let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
            out.push_str(&names.join("\t"));
            out.push('\n');
            for r in rows {
                let cells: Vec<String> = r.iter().map(py_str).collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
            out
        }
        Format::Pretty => {
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(py_str).collect())
                .collect();
            pretty(header, columns, &rows)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_with_title_and_multiline_cells() {
        let cols = [("Member", Align::Left), ("TL", Align::Right)];
        assert_eq!(
            pretty(" T ", &cols, &[vec!["n1".into(), "5".into()]]),
            "+ T -----+----+\n| Member | TL |\n+--------+----+\n| n1     |  5 |\n+--------+----+\n"
        );
        assert_eq!(
            pretty("", &cols, &[vec!["n1".into(), "a\nbb".into()], vec!["n2".into(), "".into()]]),
            "+--------+----+\n| Member | TL |\n+--------+----+\n| n1     |  a |\n|        | bb |\n+--------+----+\n| n2     |    |\n+--------+----+\n"
        );
    }

    #[test]
    fn machine_formats() {
        let cols = [("TL", Align::Right), ("Reason", Align::Left)];
        let rows = vec![vec![json!(1), json!("")]];
        assert_eq!(
            print_output(&cols, &rows, Format::Json, ""),
            "[{\"TL\": 1, \"Reason\": \"\"}]\n"
        );
        assert_eq!(
            print_output(&cols, &rows, Format::Json, "x"),
            "[{\"TL\": 1}]\n"
        );
        assert_eq!(
            print_output(&cols, &rows, Format::Tsv, ""),
            "TL\tReason\n1\t\n"
        );
        assert_eq!(
            print_output(&cols, &rows, Format::Yaml, ""),
            "- Reason: ''\n  TL: 1\n\n"
        );
        assert_eq!(print_output(&cols, &[], Format::Yaml, ""), "[]\n\n");
    }
}
