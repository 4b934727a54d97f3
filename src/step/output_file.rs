//! The `$COREFLOW_OUTPUT` file format: how a step hands outputs to its job.
//!
//! The format is GitHub Actions' `GITHUB_OUTPUT`: one `key=value` per line, or a multi-line
//! value written as
//!
//! ```text
//! key<<DELIMITER
//! first line
//! second line
//! DELIMITER
//! ```
//!
//! Whichever of `=` and `<<` comes first on a line decides its form, as in GitHub's runner.
//! Blank lines are ignored; CRLF line endings are accepted. [`parse_outputs`] returns the
//! pairs in file order, duplicates included: that a later key wins, and how outputs of
//! several steps accumulate, is the caller's business. Creating the file and reading it after
//! the step is left to the caller too.

/// Why an output file could not be parsed. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputsError {
    /// A non-blank line with neither `=` nor `<<`.
    #[error("line {line}: expected `key=value` or `key<<DELIMITER`")]
    Malformed {
        /// The offending line.
        line: usize,
    },
    /// A line starting with `=` or `<<`.
    #[error("line {line}: missing output name before `{separator}`")]
    EmptyKey {
        /// The offending line.
        line: usize,
        /// `=` or `<<`.
        separator: &'static str,
    },
    /// `key<<` with nothing after it.
    #[error("line {line}: missing delimiter after `{key}<<`")]
    EmptyDelimiter {
        /// The offending line.
        line: usize,
        /// The output being defined.
        key: String,
    },
    /// A multi-line value whose delimiter line never comes.
    #[error("line {line}: output `{key}` is never closed by a line `{delimiter}`")]
    Unterminated {
        /// The line with `key<<DELIMITER`.
        line: usize,
        /// The output being defined.
        key: String,
        /// The delimiter that was expected.
        delimiter: String,
    },
}

/// Writes `(key, value)` pairs in the `$COREFLOW_OUTPUT` format, for a step CoreFlow runs
/// itself (`sql:`): `key=value`, or `key<<DELIMITER` for a value with a line break, with a
/// delimiter no line of the value equals.
/// [`parse_outputs`] reads back the same pairs.
#[must_use]
pub fn format_outputs(pairs: &[(String, String)]) -> String {
    let mut text = String::new();
    for (key, value) in pairs {
        if value.contains('\n') || value.contains('\r') {
            let mut delimiter = String::from("COREFLOW_EOF");
            while value
                .split('\n')
                .any(|line| line.trim_end_matches('\r') == delimiter)
            {
                delimiter.push('_');
            }
            text.push_str(&format!("{key}<<{delimiter}\n{value}\n{delimiter}\n"));
        } else {
            text.push_str(&format!("{key}={value}\n"));
        }
    }
    text
}

/// Parses the contents of a `$COREFLOW_OUTPUT` file into `(key, value)` pairs, in file
/// order (duplicates kept).
///
/// # Errors
///
/// An [`OutputsError`] naming the first line that does not fit the format.
pub fn parse_outputs(text: &str) -> Result<Vec<(String, String)>, OutputsError> {
    let mut outputs = Vec::new();
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate();
    while let Some((index, line)) = lines.next() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(eq), hd) if hd.is_none_or(|hd| eq < hd) => {
                let (key, value) = (&line[..eq], &line[eq + 1..]);
                if key.is_empty() {
                    return Err(OutputsError::EmptyKey {
                        line: number,
                        separator: "=",
                    });
                }
                outputs.push((key.to_owned(), value.to_owned()));
            }
            (_, Some(hd)) => {
                let (key, delimiter) = (&line[..hd], &line[hd + 2..]);
                if key.is_empty() {
                    return Err(OutputsError::EmptyKey {
                        line: number,
                        separator: "<<",
                    });
                }
                if delimiter.is_empty() {
                    return Err(OutputsError::EmptyDelimiter {
                        line: number,
                        key: key.to_owned(),
                    });
                }
                let mut value: Option<String> = None;
                let mut closed = false;
                for (_, body) in lines.by_ref() {
                    if body == delimiter {
                        closed = true;
                        break;
                    }
                    match &mut value {
                        Some(v) => {
                            v.push('\n');
                            v.push_str(body);
                        }
                        None => value = Some(body.to_owned()),
                    }
                }
                if !closed {
                    return Err(OutputsError::Unterminated {
                        line: number,
                        key: key.to_owned(),
                        delimiter: delimiter.to_owned(),
                    });
                }
                outputs.push((key.to_owned(), value.unwrap_or_default()));
            }
            _ => return Err(OutputsError::Malformed { line: number }),
        }
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::{OutputsError, format_outputs, parse_outputs};

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_outputs(text).expect("valid outputs")
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn simple_pairs_in_order_with_duplicates() {
        assert_eq!(
            pairs("rows=42\nname=orders.csv\nrows=43\n"),
            [
                pair("rows", "42"),
                pair("name", "orders.csv"),
                pair("rows", "43")
            ]
        );
    }

    #[test]
    fn value_keeps_everything_after_the_first_equals() {
        assert_eq!(
            pairs("url=a=b==c \nempty="),
            [pair("url", "a=b==c "), pair("empty", "")]
        );
        assert_eq!(pairs("expr=a<<b"), [pair("expr", "a<<b")]);
    }

    #[test]
    fn blank_lines_and_crlf_are_accepted() {
        assert_eq!(
            pairs("\n  \r\na=1\r\n\r\nb=2"),
            [pair("a", "1"), pair("b", "2")]
        );
        assert!(pairs("").is_empty());
    }

    #[test]
    fn multi_line_values() {
        let text = "notes<<EOF\nfirst\n\nthird = x\nEOF\nafter=1\nempty<<END\nEND\n";
        assert_eq!(
            pairs(text),
            [
                pair("notes", "first\n\nthird = x"),
                pair("after", "1"),
                pair("empty", "")
            ]
        );
        // CRLF inside a multi-line value, and `<<` before `=` on the opening line.
        assert_eq!(pairs("k<<a=b\r\nx\r\na=b\r\n"), [pair("k", "x")]);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse_outputs("a=1\njunk\n"),
            Err(OutputsError::Malformed { line: 2 })
        );
        assert_eq!(
            parse_outputs("\n=1"),
            Err(OutputsError::EmptyKey {
                line: 2,
                separator: "="
            })
        );
        assert_eq!(
            parse_outputs("<<EOF\nEOF"),
            Err(OutputsError::EmptyKey {
                line: 1,
                separator: "<<"
            })
        );
        assert_eq!(
            parse_outputs("a=1\nk<<\n"),
            Err(OutputsError::EmptyDelimiter {
                line: 2,
                key: "k".into()
            })
        );
        let err = parse_outputs("a=1\nnotes<<EOF\nline\nEOF \n").expect_err("unterminated");
        assert_eq!(
            err,
            OutputsError::Unterminated {
                line: 2,
                key: "notes".into(),
                delimiter: "EOF".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "line 2: output `notes` is never closed by a line `EOF`"
        );
    }

    #[test]
    fn never_panics_on_odd_text() {
        for text in [
            "=",
            "<<",
            "<",
            "a<<<",
            "a<<<\n<",
            "\u{e9}=\u{e9}",
            "\u{e9}<<\u{e9}\n\u{e9}",
        ] {
            let _ = parse_outputs(text);
        }
        assert_eq!(pairs("a<<<\nx\n<"), [pair("a", "x")]);
    }

    #[test]
    fn formatted_outputs_read_back_as_written() {
        let pairs = vec![
            ("count".to_owned(), "42".to_owned()),
            ("empty".to_owned(), String::new()),
            ("equals".to_owned(), "a=b<<c".to_owned()),
            ("lines".to_owned(), "one\nCOREFLOW_EOF\nthree".to_owned()),
        ];
        assert_eq!(parse_outputs(&format_outputs(&pairs)).unwrap(), pairs);
    }
}
