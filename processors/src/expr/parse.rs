//! Lexer and recursive-descent parser for the SQL `WHERE`-clause expression language.

use crate::Error;

/// A parsed expression, with the byte offset of each node in the source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Byte offset in the expression text.
    pub offset: usize,
}

/// Literal values.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// `'text'`
    String(String),
    /// `timestamp '2026-11-22T00:00:00Z'`, as microseconds since the epoch (UTC).
    Timestamp(i64),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    /// `||`, string concatenation.
    Concat,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Concat => "||",
        }
    }
    /// True for `= <> < <= > >=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }
}

/// Expression nodes.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum ExprKind {
    Literal(Literal),
    /// A column, possibly nested: `geo.lat` is `["geo", "lat"]`.
    Column(Vec<String>),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    Case {
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast {
        expr: Box<Expr>,
        to: String,
    },
    /// A function call; `count(*)` has `star = true` and no arguments.
    Call {
        name: String,
        args: Vec<Expr>,
        star: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    /// 9223372036854775808 (2^63): an int64 only after a minus sign.
    MinAbs,
    Float(f64),
    Str(String),
    Ident(String),
    Quoted(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
    Star,
    End,
}

struct Lexer<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
}

fn err(src: &str, offset: usize, message: impl Into<String>) -> Error {
    Error::Expr {
        expr: src.to_string(),
        offset,
        message: message.into(),
    }
}

impl<'a> Lexer<'a> {
    fn run(src: &'a str) -> Result<Vec<(Tok, usize)>, Error> {
        let mut lx = Lexer {
            src,
            toks: Vec::new(),
        };
        let b = src.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let start = i;
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                b'(' => {
                    lx.push(Tok::LParen, start);
                    i += 1
                }
                b')' => {
                    lx.push(Tok::RParen, start);
                    i += 1
                }
                b',' => {
                    lx.push(Tok::Comma, start);
                    i += 1
                }
                b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                    lx.push(Tok::Dot, start);
                    i += 1
                }
                b'*' => {
                    lx.push(Tok::Star, start);
                    i += 1
                }
                b'+' | b'-' | b'/' | b'%' | b'=' => {
                    let op = match c {
                        b'+' => "+",
                        b'-' => "-",
                        b'/' => "/",
                        b'%' => "%",
                        _ => "=",
                    };
                    lx.push(Tok::Op(op), start);
                    i += 1;
                    if c == b'=' && b.get(i) == Some(&b'=') {
                        i += 1;
                    }
                }
                b'<' => {
                    let (op, n) = match b.get(i + 1) {
                        Some(b'=') => ("<=", 2),
                        Some(b'>') => ("<>", 2),
                        _ => ("<", 1),
                    };
                    lx.push(Tok::Op(op), start);
                    i += n
                }
                b'>' => {
                    let (op, n) = if b.get(i + 1) == Some(&b'=') {
                        (">=", 2)
                    } else {
                        (">", 1)
                    };
                    lx.push(Tok::Op(op), start);
                    i += n
                }
                b'|' if b.get(i + 1) == Some(&b'|') => {
                    lx.push(Tok::Op("||"), start);
                    i += 2
                }
                b'!' if b.get(i + 1) == Some(&b'=') => {
                    lx.push(Tok::Op("<>"), start);
                    i += 2
                }
                b'\'' => {
                    let (s, n) = lx.quoted(i, b'\'')?;
                    lx.push(Tok::Str(s), start);
                    i = n
                }
                b'"' | b'`' => {
                    let (s, n) = lx.quoted(i, c)?;
                    lx.push(Tok::Quoted(s), start);
                    i = n
                }
                b'0'..=b'9' | b'.' => {
                    let mut j = i;
                    let mut float = false;
                    while j < b.len() {
                        match b[j] {
                            b'0'..=b'9' | b'_' => j += 1,
                            b'.' if !float => {
                                float = true;
                                j += 1
                            }
                            b'e' | b'E' => {
                                float = true;
                                j += 1;
                                if matches!(b.get(j), Some(b'+' | b'-')) {
                                    j += 1;
                                }
                            }
                            _ => break,
                        }
                    }
                    let text: String = src[i..j].chars().filter(|c| *c != '_').collect();
                    let tok = if float {
                        Tok::Float(
                            text.parse()
                                .map_err(|_| err(src, i, format!("`{text}` is not a number")))?,
                        )
                    } else {
                        match text.parse::<i64>() {
                            Ok(v) => Tok::Int(v),
                            Err(_) if text.trim_start_matches('0') == "9223372036854775808" => {
                                Tok::MinAbs
                            }
                            Err(_) => {
                                Tok::Float(text.parse().map_err(|_| {
                                    err(src, i, format!("`{text}` is not a number"))
                                })?)
                            }
                        }
                    };
                    lx.push(tok, start);
                    i = j
                }
                _ if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                    let mut j = i;
                    while j < b.len()
                        && (b[j] == b'_'
                            || b[j] == b'$'
                            || b[j].is_ascii_alphanumeric()
                            || b[j] >= 0x80)
                    {
                        j += 1;
                    }
                    lx.push(Tok::Ident(src[i..j].to_string()), start);
                    i = j
                }
                _ => {
                    let ch = src[i..].chars().next().unwrap_or('?');
                    return Err(err(src, i, format!("unexpected character `{ch}`")));
                }
            }
        }
        lx.push(Tok::End, src.len());
        Ok(lx.toks)
    }

    fn push(&mut self, t: Tok, at: usize) {
        self.toks.push((t, at));
    }

    /// A quoted string or identifier starting at `i`; the quote is escaped by doubling it.
    fn quoted(&self, i: usize, q: u8) -> Result<(String, usize), Error> {
        let b = self.src.as_bytes();
        let mut out = Vec::new();
        let mut j = i + 1;
        loop {
            match b.get(j) {
                None => {
                    return Err(err(
                        self.src,
                        i,
                        "unterminated quoted text; close it with the same quote",
                    ));
                }
                Some(&c) if c == q => {
                    if b.get(j + 1) == Some(&q) {
                        out.push(q);
                        j += 2;
                    } else {
                        j += 1;
                        break;
                    }
                }
                Some(&c) => {
                    out.push(c);
                    j += 1
                }
            }
        }
        // The source is a &str and we split only at ASCII quotes, so this is valid UTF-8.
        Ok((String::from_utf8_lossy(&out).into_owned(), j))
    }
}

/// Parse an expression.
pub fn parse(src: &str) -> Result<Expr, Error> {
    let toks = Lexer::run(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
        levels: 0,
    };
    let e = p.expr()?;
    if let Tok::End = p.peek() {
    } else {
        return Err(p.err_here(format!(
            "unexpected {} after a complete expression",
            describe(p.peek())
        )));
    }
    let levels = tree_depth(&e);
    if levels > MAX_TREE_DEPTH {
        return Err(too_deep(src, e.offset));
    }
    Ok(e)
}

/// Most levels of operators in one expression: `a + b + c` is 2, `(a OR b) AND c` 2; a chain of
/// ANDs or ORs is a balanced tree (`log2` of its terms: 8 000 terms are 13 levels). Everything
/// that reads an expression (type checking, evaluation) recurses once per level, so this bounds
/// their stack whatever the input.
pub const MAX_TREE_DEPTH: usize = 128;

fn too_deep(src: &str, offset: usize) -> Error {
    err(
        src,
        offset,
        format!(
            "expression has more than {MAX_TREE_DEPTH} levels of operators (a chain of that many \
             `+`, `-`, `*`, `/` or `||`, or nesting that deep); split it across select columns"
        ),
    )
}

/// The levels of operators in `e`, counted without recursion.
fn tree_depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(e.children().into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

impl Expr {
    /// The expressions directly under this one.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Column(_) => Vec::new(),
            ExprKind::Binary { left, right, .. } => vec![left, right],
            ExprKind::Not(e) | ExprKind::Neg(e) | ExprKind::Cast { expr: e, .. } => vec![e],
            ExprKind::IsNull { expr, .. } => vec![expr],
            ExprKind::InList { expr, list, .. } => {
                std::iter::once(&**expr).chain(list.iter()).collect()
            }
            ExprKind::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            ExprKind::Like { expr, pattern, .. } => vec![expr, pattern],
            ExprKind::Case {
                branches,
                otherwise,
            } => branches
                .iter()
                .flat_map(|(w, t)| [w, t])
                .chain(otherwise.as_deref())
                .collect(),
            ExprKind::Call { args, .. } => args.iter().collect(),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(v) => format!("number {v}"),
        Tok::MinAbs => "number 9223372036854775808".into(),
        Tok::Float(v) => format!("number {v}"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Quoted(s) => format!("\"{s}\""),
        Tok::Op(o) => format!("`{o}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Star => "`*`".into(),
        Tok::End => "end of expression".into(),
    }
}

const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    /// How deep the parser itself has recursed (parentheses, NOT, signs, arguments).
    depth: usize,
    /// Levels of operators above the current point (chains of `+ - * / % ||` and of AND/OR), so
    /// that no tree deeper than [`MAX_TREE_DEPTH`] is ever built, even to be refused.
    levels: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }
    fn offset(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn err_here(&self, m: impl Into<String>) -> Error {
        err(self.src, self.offset(), m)
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.toks.get(self.pos + n), Some((Tok::Ident(s), _)) if s.eq_ignore_ascii_case(kw))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), Error> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.err_here(format!("expected {kw}, found {}", describe(self.peek()))))
        }
    }
    fn expect(&mut self, t: Tok) -> Result<(), Error> {
        if *self.peek() == t {
            self.bump();
            Ok(())
        } else {
            Err(self.err_here(format!(
                "expected {}, found {}",
                describe(&t),
                describe(self.peek())
            )))
        }
    }

    fn expr(&mut self) -> Result<Expr, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_here(format!("expression nests deeper than {MAX_DEPTH} levels")));
        }
        let r = self.or();
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> Result<Expr, Error> {
        self.logical(BinOp::Or, "or", Self::and)
    }

    fn and(&mut self) -> Result<Expr, Error> {
        self.logical(BinOp::And, "and", Self::not)
    }

    /// A chain of `op` (AND or OR) over `operand`s, as a balanced tree: both are associative in
    /// three-valued logic, and the right side of each is evaluated only for the rows its left side
    /// leaves open, so `a OR b OR c OR d` as `(a OR b) OR (c OR d)` gives the same rows and
    /// errors as read left to right, with 8 000 terms 13 levels deep instead of 8 000.
    fn logical(
        &mut self,
        op: BinOp,
        kw: &str,
        operand: fn(&mut Self) -> Result<Expr, Error>,
    ) -> Result<Expr, Error> {
        let first = operand(self)?;
        if !self.is_kw(kw) {
            return Ok(first);
        }
        let base = self.levels;
        let mut terms = vec![(first, 0)];
        while self.is_kw(kw) {
            let offset = self.offset();
            self.bump();
            // The levels the balanced tree has so far above its terms.
            self.levels = base + (terms.len() + 1).next_power_of_two().trailing_zeros() as usize;
            if self.levels > MAX_TREE_DEPTH {
                return Err(too_deep(self.src, offset));
            }
            terms.push((operand(self)?, offset));
        }
        self.levels = base;
        Ok(balanced(op, terms))
    }

    fn not(&mut self) -> Result<Expr, Error> {
        if self.is_kw("not") {
            let offset = self.offset();
            self.bump();
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(
                    self.err_here(format!("expression nests deeper than {MAX_DEPTH} levels"))
                );
            }
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(e)),
                offset,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, Error> {
        let l = self.concat()?;
        let offset = self.offset();
        if let Tok::Op(o) = self.peek() {
            let op = match *o {
                "=" => Some(BinOp::Eq),
                "<>" => Some(BinOp::NotEq),
                "<" => Some(BinOp::Lt),
                "<=" => Some(BinOp::LtEq),
                ">" => Some(BinOp::Gt),
                ">=" => Some(BinOp::GtEq),
                _ => None,
            };
            if let Some(op) = op {
                self.bump();
                let r = self.concat()?;
                return Ok(bin(op, l, r, offset));
            }
        }
        if self.is_kw("is") {
            self.bump();
            let negated = self.eat_kw("not");
            self.expect_kw("null")?;
            return Ok(Expr {
                kind: ExprKind::IsNull {
                    expr: Box::new(l),
                    negated,
                },
                offset,
            });
        }
        let negated = if self.is_kw("not")
            && (self.is_kw_at(1, "in")
                || self.is_kw_at(1, "between")
                || self.is_kw_at(1, "like")
                || self.is_kw_at(1, "ilike"))
        {
            self.bump();
            true
        } else {
            false
        };
        if self.eat_kw("in") {
            self.expect(Tok::LParen)?;
            let mut list = vec![self.expr()?];
            while *self.peek() == Tok::Comma {
                self.bump();
                list.push(self.expr()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(Expr {
                kind: ExprKind::InList {
                    expr: Box::new(l),
                    list,
                    negated,
                },
                offset,
            });
        }
        if self.eat_kw("between") {
            let low = self.concat()?;
            self.expect_kw("and")?;
            let high = self.concat()?;
            return Ok(Expr {
                kind: ExprKind::Between {
                    expr: Box::new(l),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                },
                offset,
            });
        }
        let ci = self.is_kw("ilike");
        if self.eat_kw("like") || self.eat_kw("ilike") {
            let pattern = self.concat()?;
            return Ok(Expr {
                kind: ExprKind::Like {
                    expr: Box::new(l),
                    pattern: Box::new(pattern),
                    negated,
                    case_insensitive: ci,
                },
                offset,
            });
        }
        if negated {
            return Err(self.err_here("expected IN, BETWEEN, LIKE or ILIKE after NOT"));
        }
        Ok(l)
    }

    /// `||` binds looser than `+ -` and tighter than comparisons, as in PostgreSQL and DuckDB:
    /// `'a' || 1 + 2` is `'a3'`.
    fn concat(&mut self) -> Result<Expr, Error> {
        self.chain(Self::additive, |t| match t {
            Tok::Op("||") => Some(BinOp::Concat),
            _ => None,
        })
    }

    fn additive(&mut self) -> Result<Expr, Error> {
        self.chain(Self::multiplicative, |t| match t {
            Tok::Op("+") => Some(BinOp::Add),
            Tok::Op("-") => Some(BinOp::Sub),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Result<Expr, Error> {
        self.chain(Self::unary, |t| match t {
            Tok::Star => Some(BinOp::Mul),
            Tok::Op("/") => Some(BinOp::Div),
            Tok::Op("%") => Some(BinOp::Rem),
            _ => None,
        })
    }

    /// A left-associative chain of operators (`a - b - c` is `(a - b) - c`, and floating-point
    /// sums keep SQL's left-to-right rounding), each one level deeper than the last: refused
    /// past [`MAX_TREE_DEPTH`] levels before the tree grows any deeper.
    fn chain(
        &mut self,
        operand: fn(&mut Self) -> Result<Expr, Error>,
        op_of: fn(&Tok) -> Option<BinOp>,
    ) -> Result<Expr, Error> {
        let base = self.levels;
        let mut l = operand(self)?;
        while let Some(op) = op_of(self.peek()) {
            let offset = self.offset();
            self.bump();
            self.levels += 1;
            if self.levels > MAX_TREE_DEPTH {
                return Err(too_deep(self.src, offset));
            }
            let r = operand(self)?;
            l = bin(op, l, r, offset);
        }
        self.levels = base;
        Ok(l)
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        let offset = self.offset();
        match self.peek() {
            Tok::Op("-") => {
                self.bump();
                if *self.peek() == Tok::MinAbs {
                    // -9223372036854775808 is the smallest int64, not a float.
                    self.bump();
                    return Ok(Expr {
                        kind: ExprKind::Literal(Literal::Int(i64::MIN)),
                        offset,
                    });
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(
                        self.err_here(format!("expression nests deeper than {MAX_DEPTH} levels"))
                    );
                }
                let e = self.unary()?;
                self.depth -= 1;
                Ok(match e.kind {
                    ExprKind::Literal(Literal::Int(v)) if v != i64::MIN => Expr {
                        kind: ExprKind::Literal(Literal::Int(-v)),
                        offset,
                    },
                    ExprKind::Literal(Literal::Float(v)) => Expr {
                        kind: ExprKind::Literal(Literal::Float(-v)),
                        offset,
                    },
                    _ => Expr {
                        kind: ExprKind::Neg(Box::new(e)),
                        offset,
                    },
                })
            }
            Tok::Op("+") => {
                self.bump();
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(
                        self.err_here(format!("expression nests deeper than {MAX_DEPTH} levels"))
                    );
                }
                let e = self.unary();
                self.depth -= 1;
                e
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, Error> {
        let offset = self.offset();
        let lit = |l| {
            Ok(Expr {
                kind: ExprKind::Literal(l),
                offset,
            })
        };
        match self.bump() {
            Tok::Int(v) => lit(Literal::Int(v)),
            Tok::MinAbs => lit(Literal::Float(9_223_372_036_854_775_808.0)),
            Tok::Float(v) => lit(Literal::Float(v)),
            Tok::Str(s) => lit(Literal::String(s)),
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Tok::Quoted(name) => self.column(name, offset),
            Tok::Ident(name) => {
                let lower = name.to_ascii_lowercase();
                match lower.as_str() {
                    "null" => return lit(Literal::Null),
                    "true" => return lit(Literal::Bool(true)),
                    "false" => return lit(Literal::Bool(false)),
                    "case" => return self.case(offset),
                    "timestamp" if matches!(self.peek(), Tok::Str(_)) => {
                        let at = self.offset();
                        let Tok::Str(s) = self.bump() else {
                            unreachable!("peeked a string")
                        };
                        let ts = parse_timestamp(&s).ok_or_else(|| {
                            err(
                                self.src,
                                at,
                                format!(
                                    "'{s}' is not an RFC 3339 timestamp like '2026-11-22T00:00:00Z'"
                                ),
                            )
                        })?;
                        return lit(Literal::Timestamp(ts));
                    }
                    "cast" if *self.peek() == Tok::LParen => {
                        self.bump();
                        let e = self.expr()?;
                        self.expect_kw("as")?;
                        let to = match self.bump() {
                            Tok::Ident(t) => t.to_ascii_lowercase(),
                            t => {
                                return Err(err(
                                    self.src,
                                    offset,
                                    format!("expected a type name, found {}", describe(&t)),
                                ));
                            }
                        };
                        self.expect(Tok::RParen)?;
                        return Ok(Expr {
                            kind: ExprKind::Cast {
                                expr: Box::new(e),
                                to,
                            },
                            offset,
                        });
                    }
                    "and" | "or" | "not" | "in" | "between" | "like" | "ilike" | "is" | "when"
                    | "then" | "else" | "end" => {
                        return Err(err(
                            self.src,
                            offset,
                            format!(
                                "expected a value, found keyword {}; quote a column named like a keyword as \"{name}\"",
                                name.to_uppercase()
                            ),
                        ));
                    }
                    _ => {}
                }
                if *self.peek() == Tok::LParen {
                    self.bump();
                    let mut args = Vec::new();
                    let mut star = false;
                    if *self.peek() == Tok::Star {
                        self.bump();
                        star = true;
                    } else if *self.peek() != Tok::RParen {
                        args.push(self.expr()?);
                        while *self.peek() == Tok::Comma {
                            self.bump();
                            args.push(self.expr()?);
                        }
                    }
                    self.expect(Tok::RParen)?;
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            name: lower,
                            args,
                            star,
                        },
                        offset,
                    });
                }
                self.column(name, offset)
            }
            t => Err(err(
                self.src,
                offset,
                format!("expected a value, found {}", describe(&t)),
            )),
        }
    }

    fn column(&mut self, first: String, offset: usize) -> Result<Expr, Error> {
        let mut path = vec![first];
        while *self.peek() == Tok::Dot {
            self.bump();
            match self.bump() {
                Tok::Ident(s) | Tok::Quoted(s) => path.push(s),
                t => {
                    return Err(err(
                        self.src,
                        offset,
                        format!("expected a field name after `.`, found {}", describe(&t)),
                    ));
                }
            }
        }
        Ok(Expr {
            kind: ExprKind::Column(path),
            offset,
        })
    }

    fn case(&mut self, offset: usize) -> Result<Expr, Error> {
        let mut branches = Vec::new();
        while self.eat_kw("when") {
            let c = self.expr()?;
            self.expect_kw("then")?;
            let v = self.expr()?;
            branches.push((c, v));
        }
        if branches.is_empty() {
            return Err(self.err_here("CASE needs at least one WHEN … THEN …"));
        }
        let otherwise = if self.eat_kw("else") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_kw("end")?;
        Ok(Expr {
            kind: ExprKind::Case {
                branches,
                otherwise,
            },
            offset,
        })
    }
}

/// `terms` (each with the offset of the operator before it) joined by `op` as a balanced tree,
/// in order.
fn balanced(op: BinOp, terms: Vec<(Expr, usize)>) -> Expr {
    let joined = super::balance(terms, |(l, at), (r, offset)| (bin(op, l, r, offset), at));
    match joined {
        Some((e, _)) => e,
        None => Expr {
            kind: ExprKind::Literal(Literal::Null),
            offset: 0,
        },
    }
}

fn bin(op: BinOp, l: Expr, r: Expr, offset: usize) -> Expr {
    Expr {
        kind: ExprKind::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
        },
        offset,
    }
}

/// Parse an RFC 3339 timestamp (or a bare date) into microseconds since the epoch, UTC.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_micros());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_before_or() {
        let e = parse("a = 1 OR b = 2 AND c = 3").unwrap();
        let ExprKind::Binary {
            op: BinOp::Or,
            right,
            ..
        } = e.kind
        else {
            panic!("{e:?}")
        };
        assert!(matches!(
            right.kind,
            ExprKind::Binary { op: BinOp::And, .. }
        ));
    }

    #[test]
    fn parses_every_construct() {
        for s in [
            "event_type <> 'view' OR latency_ms > 500",
            "geo.lat BETWEEN -90 AND 90.5",
            "\"odd name\" NOT IN ('a', 'b''c')",
            "page LIKE '/cart%' AND NOT (ua ILIKE '%bot%')",
            "x IS NOT NULL AND y IS NULL",
            "CASE WHEN a > 1 THEN 'big' WHEN a > 0 THEN 'small' ELSE 'none' END = 'big'",
            "cast(latency_ms AS float64) / 1000 >= 0.5",
            "ts >= timestamp '2026-11-22T00:00:00Z'",
            "lower(trim(name)) = 'x' AND regexp_match(p, '^/a') AND a % 2 = 1",
            "count(*)",
        ] {
            parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("a = = 1").unwrap_err().to_string();
        assert!(e.contains("character 5"), "{e}");
        let e = parse("a = 'open").unwrap_err().to_string();
        assert!(e.contains("unterminated"), "{e}");
        let e = parse("a AND").unwrap_err().to_string();
        assert!(e.contains("end of expression"), "{e}");
        let e = parse("ts > timestamp 'yesterday'").unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let s = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&s).unwrap_err().to_string().contains("nests deeper"));
        let s = format!("{}true", "NOT ".repeat(10_000));
        assert!(parse(&s).is_err());
    }
}
