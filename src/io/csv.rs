//! The one CSV reader: every CSV the crate reads (ground truth and predictions in `metrics`,
//! HAM10000 metadata, ISIC ground truth and lesion groupings in `data::dataset`, `split.csv`)
//! goes through [`read`], so all of them treat a byte-order mark, blank lines and line numbers
//! the same way.
//!
//! The rules:
//! - the file must be UTF-8 text (anything else is an error naming the file);
//! - a UTF-8 byte-order mark at the start is dropped (Excel writes one), so the first column
//!   name never carries it;
//! - a row whose fields are all empty or blank is skipped (a trailing `,,,` line from a
//!   spreadsheet, or a blank line), so it is neither data nor an error;
//! - rows may have any number of fields ([`Table::check_widths`] enforces the header's);
//! - every row keeps its 1-based line number in the file (the header is line 1), which is what
//!   error messages name, whether lines end in LF or CRLF.

use crate::error::{Result, file_err};
use std::path::Path;

/// One data row and the line of the file it starts on.
#[derive(Clone, Debug)]
pub struct Row {
    pub line: u64,
    pub fields: Vec<String>,
}

impl Row {
    /// Field `c`, or "" when the row is shorter.
    pub fn get(&self, c: usize) -> &str {
        self.fields.get(c).map_or("", String::as_str)
    }
}

/// A CSV file: header fields as written (minus a byte-order mark) and its non-blank rows.
#[derive(Clone, Debug)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

/// Reads a whole CSV file under the module's rules. Errors name the file (and the line of a
/// malformed row); a file without a header line is an error.
pub fn read(path: &Path) -> Result<Table> {
    let bytes =
        std::fs::read(path).map_err(|e| file_err(path, format!("cannot read file: {e}")))?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(file_err(
            path,
            "cannot read CSV: the file is not UTF-8 text",
        ));
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| file_err(path, format!("cannot read CSV header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(file_err(path, "empty CSV: no header line"));
    }
    // The csv crate's record position is where it started looking for the record: before the
    // blank lines it skips, and for CRLF files before the '\n' of the previous line's end. The
    // record itself starts at the first byte after those line breaks (no record starts with
    // one), so count them to get the line the record is on.
    let line_of = |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let from = (p.byte() as usize).min(text.len());
            let breaks = text.as_bytes()[from..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .filter(|b| **b == b'\n')
                .count();
            p.line() + breaks as u64
        })
    };
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = line_of(e.position());
            file_err(path, format!("line {line}: malformed CSV: {e}"))
        })?;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push(Row {
            line: line_of(rec.position()),
            fields: rec.iter().map(str::to_string).collect(),
        });
    }
    Ok(Table { header, rows })
}

impl Table {
    /// Errors on the first row whose field count differs from the header's, naming its line.
    pub fn check_widths(&self, path: &Path) -> Result<()> {
        let want = self.header.len();
        match self.rows.iter().find(|r| r.fields.len() != want) {
            Some(r) => Err(file_err(
                path,
                format!(
                    "line {}: {} fields, but the header has {want} ({})",
                    r.line,
                    r.fields.len(),
                    self.header.join(",")
                ),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &[u8]) -> Result<Table> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn bom_blank_lines_and_line_numbers() {
        // CRLF and LF line ends give the same line numbers.
        for nl in ["\r\n", "\n"] {
            let text = ["\u{feff}image,a", "x,1", "", ",", "  , ", "y,2", ""].join(nl);
            let t = table(text.as_bytes()).unwrap();
            assert_eq!(t.header, ["image", "a"]);
            let got: Vec<(u64, &str)> = t.rows.iter().map(|r| (r.line, r.get(0))).collect();
            assert_eq!(got, [(2, "x"), (6, "y")], "{nl:?}");
            assert_eq!(t.rows[0].get(5), "");
            let t = table(["image,a", "x,1", "", "y,2"].join(nl).as_bytes()).unwrap();
            assert_eq!(t.rows[1].line, 4, "{nl:?}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let e = table(b"image,a\n\xff,1\n").unwrap_err().to_string();
        assert!(e.contains("t.csv") && e.contains("not UTF-8"), "{e}");
        let e = table(b"").unwrap_err().to_string();
        assert!(e.contains("empty CSV"), "{e}");
        let t = table(b"image,a\nx,1\ny\n").unwrap();
        let e = t.check_widths(Path::new("t.csv")).unwrap_err().to_string();
        assert!(e.contains("line 3: 1 fields, but the header has 2"), "{e}");
    }
}
