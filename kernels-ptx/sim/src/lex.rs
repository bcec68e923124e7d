//! Tokenizer for PTX text. PTX directives like `.version 8.0` end at the line
//! without a `;`, so the parser works on tokens rather than on `;`-split text.

use crate::error::{Error, Result};

/// One token with its 1-based source line.
#[derive(Clone, Debug, PartialEq)]
pub struct Tok {
    /// The token.
    pub kind: TokKind,
    /// Source line.
    pub line: u32,
}

/// Token kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum TokKind {
    /// Identifier, register, directive or dotted opcode (`ld.global.f32`, `%tid.x`, `.reg`).
    Word(String),
    /// Numeric literal as written (`12`, `0x1f`, `0f3F800000`, `1.5`).
    Num(String),
    /// Single punctuation character.
    Punct(char),
    /// A quoted string (only appears in directives we skip).
    Str(String),
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '_' | '$' | '%' | '.')
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '%' | '.')
}

/// Splits `src` into tokens, dropping `//` and `/* */` comments.
pub fn lex(src: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut line = 1u32;
    while let Some(&c) = chars.get(i) {
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while chars.get(i).is_some_and(|&c| c != '\n') {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let start = line;
            i += 2;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(Error::Parse {
                            line: start,
                            msg: "unterminated /* comment".into(),
                        })
                    }
                    Some('*') if chars.get(i + 1) == Some(&'/') => {
                        i += 2;
                        break;
                    }
                    Some('\n') => {
                        line += 1;
                        i += 1;
                    }
                    Some(_) => i += 1,
                }
            }
        } else if c == '"' {
            let s = i + 1;
            i += 1;
            while chars.get(i).is_some_and(|&c| c != '"' && c != '\n') {
                i += 1;
            }
            let text: String = chars.get(s..i).unwrap_or_default().iter().collect();
            toks.push(Tok {
                kind: TokKind::Str(text),
                line,
            });
            i += 1;
        } else if c.is_ascii_digit() {
            let s = i;
            while let Some(&d) = chars.get(i) {
                // `1.5e-3`: a sign directly after an exponent marker belongs to the literal,
                // but not in hex literals such as `0f3F8E0000` or `0x1e`.
                let hex = chars
                    .get(s + 1)
                    .is_some_and(|&x| matches!(x, 'x' | 'X' | 'f' | 'F' | 'd' | 'D'));
                let exp_sign = matches!(d, '+' | '-')
                    && !hex
                    && i > s
                    && chars.get(i - 1).is_some_and(|&p| p == 'e' || p == 'E');
                if d.is_ascii_alphanumeric() || d == '.' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            let text: String = chars.get(s..i).unwrap_or_default().iter().collect();
            toks.push(Tok {
                kind: TokKind::Num(text),
                line,
            });
        } else if is_word_start(c) {
            let s = i;
            while chars.get(i).is_some_and(|&c| is_word_char(c)) {
                i += 1;
            }
            let text: String = chars.get(s..i).unwrap_or_default().iter().collect();
            toks.push(Tok {
                kind: TokKind::Word(text),
                line,
            });
        } else if "{}[]()<>,;:+-|!@=".contains(c) {
            toks.push(Tok {
                kind: TokKind::Punct(c),
                line,
            });
            i += 1;
        } else {
            return Err(Error::Parse {
                line,
                msg: format!("unexpected character {c:?}"),
            });
        }
    }
    Ok(toks)
}

/// Parses an integer literal: decimal, `0x` hex, optional `U` suffix. Here
/// with the lexer because both the parser and the operand decoder read
/// number tokens (in `parse` it made `decode` and `parse` need each other).
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim_end_matches(['U', 'u']);
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok().map(|v| v as i64)
    } else {
        s.parse::<i64>()
            .ok()
            .or_else(|| s.parse::<u64>().ok().map(|v| v as i64))
    }
}
