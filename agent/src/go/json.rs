//! Go `encoding/json` as the agent and CLI expose it:
//!
//! * parsing into the generic tree Go builds for an `interface{}` (objects,
//!   arrays, float64 numbers, strings, bools, null), with Go's scanner error
//!   texts (`invalid character '}' looking for beginning of object key
//!   string`, `unexpected EOF`, ...) in both the streaming `Decoder` flavour
//!   (config files) and the `Unmarshal` flavour (tags and keyring files);
//! * `MarshalIndent(v, "", "  ")` output with Go's string escaping (HTML
//!   characters as `\u003c`, invalid UTF-8 as `\ufffd`).

/// A JSON value as Go decodes it into `interface{}`.
#[derive(Clone, Debug, PartialEq)]
pub enum JValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number (Go float64).
    Number(f64),
    /// A string (invalid UTF-8 replaced by U+FFFD, as Go does).
    Str(String),
    /// An array.
    Array(Vec<JValue>),
    /// An object; for duplicate keys the last value wins, as in Go's map.
    Object(Vec<(String, JValue)>),
}

impl JValue {
    /// Go's reflect type name of the decoded value, as mapstructure prints
    /// it (`float64`, `string`, `bool`, `[]interface {}`,
    /// `map[string]interface {}`).
    pub fn go_type(&self) -> &'static str {
        match self {
            JValue::Null => "<nil>",
            JValue::Bool(_) => "bool",
            JValue::Number(_) => "float64",
            JValue::Str(_) => "string",
            JValue::Array(_) => "[]interface {}",
            JValue::Object(_) => "map[string]interface {}",
        }
    }

    /// Go's reflect kind name (`float64`, `string`, `bool`, `slice`, `map`).
    pub fn go_kind(&self) -> &'static str {
        match self {
            JValue::Null => "invalid",
            JValue::Bool(_) => "bool",
            JValue::Number(_) => "float64",
            JValue::Str(_) => "string",
            JValue::Array(_) => "slice",
            JValue::Object(_) => "map",
        }
    }

    /// Go's `%v` of the decoded value: `5`, `x`, `true`, `[1 x]`,
    /// `map[a:1 b:x]` (map keys sorted).
    pub fn go_v(&self) -> String {
        match self {
            JValue::Null => "<nil>".to_string(),
            JValue::Bool(b) => b.to_string(),
            JValue::Number(n) => super::fmt::format_float(*n),
            JValue::Str(s) => s.clone(),
            JValue::Array(a) => {
                let items: Vec<String> = a.iter().map(JValue::go_v).collect();
                format!("[{}]", items.join(" "))
            }
            JValue::Object(o) => {
                let mut items: Vec<(&String, String)> =
                    o.iter().map(|(k, v)| (k, v.go_v())).collect();
                items.sort_by(|a, b| a.0.cmp(b.0));
                let items: Vec<String> =
                    items.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", items.join(" "))
            }
        }
    }

    /// Go's name of the JSON kind in `UnmarshalTypeError` (`number`, ...).
    pub fn json_kind(&self) -> &'static str {
        match self {
            JValue::Null => "null",
            JValue::Bool(_) => "bool",
            JValue::Number(_) => "number",
            JValue::Str(_) => "string",
            JValue::Array(_) => "array",
            JValue::Object(_) => "object",
        }
    }
}

/// Which Go entry point's error texts to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    /// `json.NewDecoder(r).Decode`: reads the first value, ignores the rest;
    /// `EOF` for empty input, `unexpected EOF` for a cut value.
    Decoder,
    /// `json.Unmarshal`: the whole input is one value;
    /// `unexpected end of JSON input`.
    Unmarshal,
}

/// Parses the first JSON value of `input` like Go's `Decoder.Decode` into
/// an `interface{}`.
pub fn decode_first(input: &[u8]) -> Result<JValue, String> {
    parse(input, Flavour::Decoder)
}

/// Parses `input` like Go's `json.Unmarshal` into an `interface{}`.
pub fn unmarshal(input: &[u8]) -> Result<JValue, String> {
    parse(input, Flavour::Unmarshal)
}

enum PErr {
    Eof,
    Syntax(String),
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    /// The first number that does not fit a float64 (Go reports it after
    /// the syntax check).
    range_err: Option<String>,
}

fn parse(input: &[u8], flavour: Flavour) -> Result<JValue, String> {
    let mut p = Parser { b: input, pos: 0, range_err: None };
    p.skip_ws();
    if p.pos == input.len() {
        return Err(match flavour {
            Flavour::Decoder => "EOF".to_string(),
            Flavour::Unmarshal => "unexpected end of JSON input".to_string(),
        });
    }
    let v = match p.value() {
        Ok(v) => v,
        Err(PErr::Eof) => {
            return Err(match flavour {
                Flavour::Decoder => "unexpected EOF".to_string(),
                Flavour::Unmarshal => "unexpected end of JSON input".to_string(),
            })
        }
        Err(PErr::Syntax(s)) => return Err(s),
    };
    if flavour == Flavour::Unmarshal {
        p.skip_ws();
        if let Some(&c) = p.b.get(p.pos) {
            return Err(syntax(c, "after top-level value"));
        }
    }
    if let Some(e) = p.range_err {
        return Err(e);
    }
    Ok(v)
}

/// Go's `quoteChar` of a byte in scanner errors.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        c => {
            let q = super::fmt::quote_str(&char::from(c).to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

fn syntax(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn next(&mut self) -> Result<u8, PErr> {
        let c = *self.b.get(self.pos).ok_or(PErr::Eof)?;
        self.pos += 1;
        Ok(c)
    }

    fn peek(&self) -> Result<u8, PErr> {
        self.b.get(self.pos).copied().ok_or(PErr::Eof)
    }

    fn value(&mut self) -> Result<JValue, PErr> {
        self.skip_ws();
        let c = self.next()?;
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(JValue::Str),
            b'-' | b'0'..=b'9' => self.number(c),
            b't' => self.literal(b"rue", "true").map(|()| JValue::Bool(true)),
            b'f' => self.literal(b"alse", "false").map(|()| JValue::Bool(false)),
            b'n' => self.literal(b"ull", "null").map(|()| JValue::Null),
            c => Err(PErr::Syntax(syntax(c, "looking for beginning of value"))),
        }
    }

    fn literal(&mut self, rest: &[u8], word: &str) -> Result<(), PErr> {
        for &want in rest {
            let c = self.next()?;
            if c != want {
                return Err(PErr::Syntax(syntax(
                    c,
                    &format!("in literal {word} (expecting {})", quote_char(want)),
                )));
            }
        }
        Ok(())
    }

    fn object(&mut self) -> Result<JValue, PErr> {
        let mut out: Vec<(String, JValue)> = Vec::new();
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(JValue::Object(out));
        }
        loop {
            self.skip_ws();
            let c = self.next()?;
            if c != b'"' {
                return Err(PErr::Syntax(syntax(c, "looking for beginning of object key string")));
            }
            let key = self.string()?;
            self.skip_ws();
            let c = self.next()?;
            if c != b':' {
                return Err(PErr::Syntax(syntax(c, "after object key")));
            }
            let v = self.value()?;
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = v,
                None => out.push((key, v)),
            }
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(JValue::Object(out)),
                c => return Err(PErr::Syntax(syntax(c, "after object key:value pair"))),
            }
        }
    }

    fn array(&mut self) -> Result<JValue, PErr> {
        let mut out = Vec::new();
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Ok(JValue::Array(out));
        }
        loop {
            out.push(self.value()?);
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(JValue::Array(out)),
                c => return Err(PErr::Syntax(syntax(c, "after array element"))),
            }
        }
    }

    /// After the opening quote. Returns the decoded text.
    fn string(&mut self) -> Result<String, PErr> {
        let mut raw: Vec<u8> = Vec::new();
        let mut out = String::new();
        let flush = |raw: &mut Vec<u8>, out: &mut String| {
            out.push_str(&lossy_go(raw));
            raw.clear();
        };
        loop {
            let c = self.next()?;
            match c {
                b'"' => {
                    flush(&mut raw, &mut out);
                    return Ok(out);
                }
                b'\\' => {
                    let e = self.next()?;
                    let ch = match e {
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'"' => '"',
                        b'u' => {
                            let hi = self.hex4()?;
                            let mut ch = char::from_u32(u32::from(hi));
                            if (0xd800..0xdc00).contains(&hi) {
                                // A surrogate pair needs a following \uDC00-DFFF.
                                let save = self.pos;
                                let lo = if self.b.get(self.pos) == Some(&b'\\')
                                    && self.b.get(self.pos + 1) == Some(&b'u')
                                {
                                    self.pos += 2;
                                    Some(self.hex4()?)
                                } else {
                                    None
                                };
                                match lo {
                                    Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                                        let cp = 0x10000
                                            + ((u32::from(hi) - 0xd800) << 10)
                                            + (u32::from(lo) - 0xdc00);
                                        ch = char::from_u32(cp);
                                    }
                                    _ => {
                                        self.pos = save;
                                        ch = None;
                                    }
                                }
                            }
                            ch.unwrap_or('\u{fffd}')
                        }
                        e => return Err(PErr::Syntax(syntax(e, "in string escape code"))),
                    };
                    flush(&mut raw, &mut out);
                    out.push(ch);
                }
                c if c < 0x20 => return Err(PErr::Syntax(syntax(c, "in string literal"))),
                c => raw.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, PErr> {
        let mut v = 0u16;
        for _ in 0..4 {
            let c = self.next()?;
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| PErr::Syntax(syntax(c, "in \\u hexadecimal character escape")))?;
            v = v * 16 + d as u16;
        }
        Ok(v)
    }

    /// After the first character (`-` or a digit).
    fn number(&mut self, first: u8) -> Result<JValue, PErr> {
        let start = self.pos - 1;
        let mut c = first;
        if c == b'-' {
            c = self.next()?;
            if !c.is_ascii_digit() {
                return Err(PErr::Syntax(syntax(c, "in numeric literal")));
            }
        }
        if c != b'0' {
            while matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return Err(PErr::Syntax(syntax(c, "after decimal point in numeric literal")));
            }
            while matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            let mut c = self.next()?;
            if c == b'+' || c == b'-' {
                c = self.next()?;
            }
            if !c.is_ascii_digit() {
                return Err(PErr::Syntax(syntax(c, "in exponent of numeric literal")));
            }
            while matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        let text = core::str::from_utf8(&self.b[start..self.pos]).unwrap_or("0");
        let v: f64 = text.parse().unwrap_or(f64::INFINITY);
        if v.is_infinite() && self.range_err.is_none() {
            self.range_err =
                Some(format!("json: cannot unmarshal number {text} into Go value of type float64"));
        }
        Ok(JValue::Number(v))
    }
}

/// Bytes to text, each invalid byte becoming U+FFFD (Go's per-byte rule).
fn lossy_go(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut rest = b;
    while !rest.is_empty() {
        let (c, w) = super::fmt::decode_rune(rest);
        out.push(c.unwrap_or('\u{fffd}'));
        rest = &rest[w.max(1)..];
    }
    out
}

/// A value to print with [`marshal_indent`]. Objects keep the given key
/// order: callers sort map keys (Go does) and keep struct fields in
/// declaration order.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    /// `null`.
    Null,
    /// A string; the bytes need not be UTF-8 (invalid bytes print as `\ufffd`).
    Str(Vec<u8>),
    /// An unsigned integer.
    Uint(u64),
    /// An object.
    Object(Vec<(String, Out)>),
    /// An array.
    Array(Vec<Out>),
}

impl Out {
    /// A string value.
    pub fn str(s: &str) -> Out {
        Out::Str(s.as_bytes().to_vec())
    }

    /// A Go `map[string]string` (keys sorted); `None` is a nil map.
    pub fn string_map(m: Option<&[(String, String)]>) -> Out {
        match m {
            None => Out::Null,
            Some(m) => {
                let mut v: Vec<(String, Out)> =
                    m.iter().map(|(k, v)| (k.clone(), Out::str(v))).collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v.dedup_by(|a, b| a.0 == b.0);
                Out::Object(v)
            }
        }
    }
}

/// Go's `json.MarshalIndent(v, "", "  ")`.
pub fn marshal_indent(v: &Out) -> String {
    let mut s = String::new();
    write_value(&mut s, v, 0);
    s
}

fn newline(s: &mut String, depth: usize) {
    s.push('\n');
    for _ in 0..depth {
        s.push_str("  ");
    }
}

fn write_value(s: &mut String, v: &Out, depth: usize) {
    match v {
        Out::Null => s.push_str("null"),
        Out::Uint(n) => s.push_str(&n.to_string()),
        Out::Str(b) => write_string(s, b),
        Out::Array(items) if items.is_empty() => s.push_str("[]"),
        Out::Array(items) => {
            s.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                newline(s, depth + 1);
                write_value(s, item, depth + 1);
            }
            newline(s, depth);
            s.push(']');
        }
        Out::Object(fields) if fields.is_empty() => s.push_str("{}"),
        Out::Object(fields) => {
            s.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                newline(s, depth + 1);
                write_string(s, k.as_bytes());
                s.push_str(": ");
                write_value(s, item, depth + 1);
            }
            newline(s, depth);
            s.push('}');
        }
    }
}

/// A streaming JSON writer with Go's `encoding/json` string rules (HTML
/// escaping), compact like `json.Marshal` or indented like
/// `json.MarshalIndent(v, "", indent)`. The caller keeps keys and values
/// alternating; the writer places commas, colons and newlines.
#[derive(Debug)]
pub struct Writer {
    out: String,
    indent: &'static str,
    /// Per open container: whether it has an element yet.
    stack: Vec<bool>,
    /// A key was just written: the next value follows it on the same line.
    after_key: bool,
}

impl Writer {
    /// A compact writer (`indent` empty) or an indenting one.
    pub fn new(indent: &'static str) -> Writer {
        Writer { out: String::new(), indent, stack: Vec::new(), after_key: false }
    }

    /// The text written.
    pub fn finish(self) -> String {
        self.out
    }

    fn newline(&mut self) {
        if self.indent.is_empty() {
            return;
        }
        self.out.push('\n');
        for _ in 0..self.stack.len() {
            self.out.push_str(self.indent);
        }
    }

    /// Before a value or a key: the comma and line break it needs.
    fn element(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(has) = self.stack.last_mut() {
            let had = *has;
            *has = true;
            if had {
                self.out.push(',');
            }
            self.newline();
        }
    }

    fn open(&mut self, c: char) -> &mut Self {
        self.element();
        self.out.push(c);
        self.stack.push(false);
        self
    }

    fn close(&mut self, c: char) -> &mut Self {
        if self.stack.pop() == Some(true) {
            self.newline();
        }
        self.out.push(c);
        self
    }

    /// `{`
    pub fn begin_object(&mut self) -> &mut Self {
        self.open('{')
    }

    /// `}`
    pub fn end_object(&mut self) -> &mut Self {
        self.close('}')
    }

    /// `[`
    pub fn begin_array(&mut self) -> &mut Self {
        self.open('[')
    }

    /// `]`
    pub fn end_array(&mut self) -> &mut Self {
        self.close(']')
    }

    /// An object key; the next call writes its value.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.element();
        write_string(&mut self.out, k.as_bytes());
        self.out.push(':');
        if !self.indent.is_empty() {
            self.out.push(' ');
        }
        self.after_key = true;
        self
    }

    /// A string value (bytes that are not UTF-8 print as `\ufffd`).
    pub fn string(&mut self, v: &[u8]) -> &mut Self {
        self.element();
        write_string(&mut self.out, v);
        self
    }

    /// A string value.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.string(v.as_bytes())
    }

    /// An unsigned integer.
    pub fn uint(&mut self, v: u64) -> &mut Self {
        self.element();
        self.out.push_str(&v.to_string());
        self
    }

    /// A signed integer.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.element();
        self.out.push_str(&v.to_string());
        self
    }

    /// A float; non-finite values (which JSON cannot carry) print as 0.
    pub fn float(&mut self, v: f64) -> &mut Self {
        self.element();
        let v = if v.is_finite() { v } else { 0.0 };
        self.out.push_str(&v.to_string());
        self
    }

    /// `true` / `false`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.element();
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// `null`.
    pub fn null(&mut self) -> &mut Self {
        self.element();
        self.out.push_str("null");
        self
    }

    /// A `map[string]string` with keys in the given (sorted) order.
    pub fn string_map<'a>(&mut self, m: impl IntoIterator<Item = (&'a str, &'a str)>) -> &mut Self {
        self.begin_object();
        for (k, v) in m {
            self.key(k).str(v);
        }
        self.end_object()
    }
}

/// Go's JSON string encoding with HTML escaping (Go 1.19 rules).
fn write_string(s: &mut String, b: &[u8]) {
    s.push('"');
    let mut rest = b;
    while !rest.is_empty() {
        let (c, w) = super::fmt::decode_rune(rest);
        match c {
            None => s.push_str("\\ufffd"),
            Some('"') => s.push_str("\\\""),
            Some('\\') => s.push_str("\\\\"),
            Some('\n') => s.push_str("\\n"),
            Some('\r') => s.push_str("\\r"),
            Some('\t') => s.push_str("\\t"),
            Some(c @ ('<' | '>' | '&')) => s.push_str(&format!("\\u{:04x}", c as u32)),
            Some(c) if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            Some(c @ ('\u{2028}' | '\u{2029}')) => s.push_str(&format!("\\u{:04x}", c as u32)),
            Some(c) => s.push(c),
        }
        rest = &rest[w.max(1)..];
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_compact_and_indented() {
        let build = |w: &mut Writer| {
            w.begin_object().key("A").uint(1).key("B").begin_array();
            w.str("x<y").float(0.5).bool(true).null().end_array();
            w.key("C").begin_object().end_object().key("D").begin_array().end_array();
            w.key("E").string_map([("k", "v")]).key("F").int(-2).end_object();
        };
        let mut w = Writer::new("");
        build(&mut w);
        assert_eq!(
            w.finish(),
            r#"{"A":1,"B":["x\u003cy",0.5,true,null],"C":{},"D":[],"E":{"k":"v"},"F":-2}"#
        );
        let mut w = Writer::new("    ");
        build(&mut w);
        assert_eq!(
            w.finish(),
            "{\n    \"A\": 1,\n    \"B\": [\n        \"x\\u003cy\",\n        0.5,\n        true,\n        null\n    ],\n    \"C\": {},\n    \"D\": [],\n    \"E\": {\n        \"k\": \"v\"\n    },\n    \"F\": -2\n}"
        );
    }

    fn dec_err(s: &str) -> String {
        decode_first(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn decoder_errors_like_go() {
        // Each observed with `serf agent -config-file=...`.
        assert_eq!(dec_err("{\"node_name\": "), "unexpected EOF");
        assert_eq!(dec_err(""), "EOF");
        assert_eq!(dec_err("  "), "EOF");
        assert_eq!(dec_err("xyz"), "invalid character 'x' looking for beginning of value");
        assert_eq!(
            dec_err("{\"node_name\": \"a\",}"),
            "invalid character '}' looking for beginning of object key string"
        );
        assert_eq!(dec_err("{\"node_name\" \"a\"}"), "invalid character '\"' after object key");
        assert_eq!(
            dec_err("{\"a\": tru}"),
            "invalid character '}' in literal true (expecting 'e')"
        );
        assert_eq!(dec_err("{\"a\": 01}"), "invalid character '1' after object key:value pair");
        assert_eq!(dec_err("{\"a\": -}"), "invalid character '}' in numeric literal");
        assert_eq!(
            dec_err("{\"a\": 1.}"),
            "invalid character '}' after decimal point in numeric literal"
        );
        assert_eq!(dec_err("{\"a\": 1e}"), "invalid character '}' in exponent of numeric literal");
        assert_eq!(dec_err("{\"a\": \"\\q\"}"), "invalid character 'q' in string escape code");
        assert_eq!(
            dec_err("{\"a\": \"\\u12\"}"),
            "invalid character '\"' in \\u hexadecimal character escape"
        );
        assert_eq!(dec_err("{\"a\": \"x\n\"}"), "invalid character '\\n' in string literal");
        assert_eq!(dec_err("{\"a\": [1 2]}"), "invalid character '2' after array element");
        assert_eq!(
            dec_err("{'a': 1}"),
            "invalid character '\\'' looking for beginning of object key string"
        );
        assert_eq!(
            dec_err("{\"a\": 1e400}"),
            "json: cannot unmarshal number 1e400 into Go value of type float64"
        );
        // Only the first value counts.
        assert_eq!(
            decode_first(b"{\"a\":1} garbage").unwrap(),
            JValue::Object(vec![("a".into(), JValue::Number(1.0))])
        );
    }

    #[test]
    fn unmarshal_errors_like_go() {
        assert_eq!(unmarshal(b"{").unwrap_err(), "unexpected end of JSON input");
        assert_eq!(unmarshal(b"").unwrap_err(), "unexpected end of JSON input");
        assert_eq!(
            unmarshal(b"{\"a\":\"b\"}x").unwrap_err(),
            "invalid character 'x' after top-level value"
        );
        assert!(unmarshal(b" [\"a\"] \n").is_ok());
    }

    #[test]
    fn values() {
        let v = decode_first(
            b"{\"s\":\"a\\u00e9\\ud83d\\ude00\",\"n\":-1.5e2,\"b\":[true,null],\"s\":\"z\"}",
        )
        .unwrap();
        assert_eq!(
            v,
            JValue::Object(vec![
                ("s".into(), JValue::Str("z".into())),
                ("n".into(), JValue::Number(-150.0)),
                ("b".into(), JValue::Array(vec![JValue::Bool(true), JValue::Null])),
            ])
        );
        assert_eq!(v.go_v(), "map[b:[true <nil>] n:-150 s:z]");
        let s = decode_first(b"\"\\ud800x\xff\"").unwrap();
        assert_eq!(s, JValue::Str("\u{fffd}x\u{fffd}".into()));
    }

    #[test]
    fn marshal_indent_like_go() {
        let v = Out::Object(vec![
            (
                "members".into(),
                Out::Array(vec![Out::Object(vec![
                    ("name".into(), Out::str("a<b>&\"\n\u{1}\u{2028}")),
                    ("port".into(), Out::Uint(7946)),
                    ("tags".into(), Out::Object(vec![])),
                ])]),
            ),
            ("none".into(), Out::Null),
            ("empty".into(), Out::Array(vec![])),
            ("bad".into(), Out::Str(vec![b'x', 0xff])),
        ]);
        assert_eq!(
            marshal_indent(&v),
            "{\n  \"members\": [\n    {\n      \"name\": \"a\\u003cb\\u003e\\u0026\\\"\\n\\u0001\\u2028\",\n      \
             \"port\": 7946,\n      \"tags\": {}\n    }\n  ],\n  \"none\": null,\n  \"empty\": [],\n  \
             \"bad\": \"x\\ufffd\"\n}"
        );
    }
}
