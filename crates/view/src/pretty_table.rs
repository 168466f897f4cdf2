//! A hand-written equivalent of the `prettytable` output that `patronictl` prints through
//! `PatronictlPrettyTable` (ctl.py): one space of padding, `+`/`-`/`|` borders, a header
//! rule, and a title written over the start of the top border.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Table<'a> {
    /// Written into the top border from its second character on, cut to fit
    /// (`PatronictlPrettyTable.__build_header`).
    pub title: &'a str,
    pub columns: Vec<(&'a str, Align)>,
    /// Cells may hold several lines; then prettytable draws a rule after every row
    /// (patronictl switches to `hrules=ALL`).
    pub rows: Vec<Vec<String>>,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize, align: Align) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    match align {
        Align::Left => format!("{s}{fill}"),
        Align::Right => format!("{fill}{s}"),
    }
}

impl Table<'_> {
    pub fn render(&self) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let cells = self
                    .rows
                    .iter()
                    .flat_map(|r| r.get(i).map(String::as_str).unwrap_or("").lines())
                    .map(width);
                cells.chain([width(name)]).max().unwrap_or(0)
            })
            .collect();
        let rule: String = widths.iter().fold("+".to_string(), |mut acc, w| {
            acc.push_str(&"-".repeat(w + 2));
            acc.push('+');
            acc
        });
        let line = |cells: &[&str]| -> String {
            let mut out = String::from("|");
            for ((cell, w), (_, align)) in cells.iter().zip(&widths).zip(&self.columns) {
                out.push(' ');
                out.push_str(&pad(cell, *w, *align));
                out.push_str(" |");
            }
            out
        };
        let multiline = self.rows.iter().flatten().any(|c| c.contains('\n'));

        let mut out = vec![self.titled(&rule)];
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| *n).collect();
        out.push(line(&names));
        out.push(rule.clone());
        for (i, row) in self.rows.iter().enumerate() {
            let split: Vec<Vec<&str>> = (0..self.columns.len())
                .map(|c| row.get(c).map_or(vec![], |s| s.lines().collect()))
                .collect();
            let height = split.iter().map(Vec::len).max().unwrap_or(0).max(1);
            for l in 0..height {
                let cells: Vec<&str> = split
                    .iter()
                    .map(|lines| lines.get(l).copied().unwrap_or(""))
                    .collect();
                out.push(line(&cells));
            }
            if multiline && i + 1 < self.rows.len() {
                out.push(rule.clone());
            }
        }
        out.push(rule);
        out.join("\n")
    }

    /// `line[0] + title[:len(line) - 2] + line[1 + len(title):]`.
    fn titled(&self, rule: &str) -> String {
        let chars: Vec<char> = rule.chars().collect();
        if self.title.is_empty() || chars.len() < 2 {
            return rule.to_string();
        }
        let title: String = self.title.chars().take(chars.len() - 2).collect();
        let mut s = String::new();
        s.push(chars[0]);
        s.push_str(&title);
        s.extend(&chars[1 + width(&title)..]);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table<'a>(title: &'a str, rows: Vec<Vec<String>>) -> Table<'a> {
        Table {
            title,
            columns: vec![("Member", Align::Left), ("TL", Align::Right)],
            rows,
        }
    }

    #[test]
    fn short_and_long_titles() {
        let rows = vec![vec!["n1".to_string(), "5".to_string()]];
        assert_eq!(
            table(" T ", rows.clone()).render(),
            "+ T -----+----+\n\
             | Member | TL |\n\
             +--------+----+\n\
             | n1     |  5 |\n\
             +--------+----+"
        );
        // Longer than the whole border: cut so the last '+' stays.
        assert_eq!(
            table(" Cluster: a-very-long-name (uninitialized) ", rows)
                .render()
                .lines()
                .next()
                .unwrap(),
            "+ Cluster: a-v+"
        );
    }

    #[test]
    fn no_rows_prints_two_rules() {
        assert_eq!(
            table(" X ", vec![]).render(),
            "+ X -----+----+\n| Member | TL |\n+--------+----+\n+--------+----+"
        );
    }

    #[test]
    fn multiline_cells_rule_every_row() {
        let rows = vec![
            vec!["n1".to_string(), "a\nbb".to_string()],
            vec!["n2".to_string(), "".to_string()],
        ];
        assert_eq!(
            table("", rows).render(),
            "+--------+----+\n\
             | Member | TL |\n\
             +--------+----+\n\
             | n1     |  a |\n\
             |        | bb |\n\
             +--------+----+\n\
             | n2     |    |\n\
             +--------+----+"
        );
    }
}
