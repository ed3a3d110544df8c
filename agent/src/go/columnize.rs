//! `columnize.SimpleFormat` as the Go CLI uses it for `members` and `keys`:
//! cells split at `|` and trimmed, every column but the last left-aligned
//! to its widest cell (in characters, as observed with non-ASCII node
//! names) and followed by a two-space gutter, the
//! last column unpadded, rows joined by `\n` with no trailing newline.
//!
//! Hence the quirk cli.md §3 describes: a row whose last cell is empty still
//! ends with the gutter of the column before it.

/// Formats `lines` (cells separated by `|`).
pub fn simple_format<S: AsRef<str>>(lines: &[S]) -> String {
    let rows: Vec<Vec<&str>> =
        lines.iter().map(|l| l.as_ref().split('|').map(str::trim).collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str("  ");
            }
        }
        out.push('\n');
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_with_trailing_gutter() {
        let out = simple_format(&[
            "nodeLongName|127.0.1.72:7946|alive|",
            "nodeQ|127.0.1.71:7946|alive|a=b",
        ]);
        assert_eq!(
            out,
            "nodeLongName  127.0.1.72:7946  alive  \nnodeQ         127.0.1.71:7946  alive  a=b"
        );
        assert_eq!(simple_format::<&str>(&[]), "");
        // Widths count characters, not bytes (checked against the Go CLI).
        assert_eq!(simple_format(&["nödéxyz|a|", "abcdefg|b|"]), "nödéxyz  a  \nabcdefg  b  ");
        assert_eq!(
            simple_format(&["failed: | n1 | boom", "failed: | node2 | x"]),
            "failed:  n1     boom\nfailed:  node2  x"
        );
    }
}
