//! A Parquet footer's schema checked for depth before anything builds a tree from it.
//!
//! The footer lists the schema as a flat array of elements, each group saying how many children
//! follow it; readers (the `parquet` crate among them) turn that into a tree by recursion, one
//! level per level of nesting. A 119 KB file whose footer declares 10 000 nested groups
//! overflows the stack and aborts the process, taking every other object of the invocation
//! with it. [`check_nesting`] walks the footer's Thrift compact encoding with a loop, reads only
//! each element's `num_children`, and refuses a schema deeper than the limit with a reason.

/// Deepest nesting of groups accepted in a Parquet schema. Real files rarely pass 10 (a list of
/// structs of lists is 5 levels).
pub const MAX_PARQUET_NESTING: usize = 64;

/// Thrift compact types.
const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

/// Values nested deeper than this inside the footer (structs in lists in structs …) are refused
/// while skipping, as the `parquet` crate's own reader does.
const MAX_THRIFT_DEPTH: usize = 64;

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self
            .b
            .get(self.i)
            .ok_or("the footer ends in the middle of a value")?;
        self.i += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("the footer has a malformed number".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.i.checked_add(n))
            .filter(|&e| e <= self.b.len())
            .ok_or("the footer ends in the middle of a value")?;
        self.i = end;
        Ok(())
    }

    /// `(field id, type)` of the next field of a struct, `None` at its end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let h = self.byte()?;
        let ty = h & 0x0f;
        if ty == STOP {
            return Ok(None);
        }
        let delta = h >> 4;
        *last = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| "the footer has a malformed field id")?
        } else {
            last.wrapping_add(i16::from(delta))
        };
        Ok(Some((*last, ty)))
    }

    /// `(element type, count)` of a list or set.
    fn list(&mut self) -> Result<(u8, u64), String> {
        let h = self.byte()?;
        let n = match h >> 4 {
            15 => self.varint()?,
            n => u64::from(n),
        };
        Ok((h & 0x0f, n))
    }

    /// Skip one value of type `ty`, without recursion: pending work is an explicit stack.
    fn skip(&mut self, ty: u8) -> Result<(), String> {
        enum Open {
            Struct(i16),
            /// Elements of one type left to skip.
            Items(u8, u64),
            /// Map entries left: key type, value type, values still due (2 per entry).
            Pairs(u8, u8, u64),
        }
        let mut stack: Vec<Open> = Vec::new();
        let mut next = Some(ty);
        loop {
            if let Some(ty) = next.take() {
                match ty {
                    TRUE | FALSE => {}
                    BYTE => self.skip_bytes(1)?,
                    I16 | I32 | I64 => {
                        self.varint()?;
                    }
                    DOUBLE => self.skip_bytes(8)?,
                    BINARY => {
                        let n = self.varint()?;
                        self.skip_bytes(n)?;
                    }
                    LIST | SET => {
                        let (et, n) = self.list()?;
                        stack.push(Open::Items(et, n));
                    }
                    MAP => {
                        let n = self.varint()?;
                        let kv = if n > 0 { self.byte()? } else { 0 };
                        stack.push(Open::Pairs(kv >> 4, kv & 0x0f, n.saturating_mul(2)));
                    }
                    STRUCT => stack.push(Open::Struct(0)),
                    other => return Err(format!("the footer has an unknown value type {other}")),
                }
                if stack.len() > MAX_THRIFT_DEPTH {
                    return Err(format!(
                        "its footer nests values more than {MAX_THRIFT_DEPTH} deep"
                    ));
                }
            }
            let Some(top) = stack.last_mut() else {
                return Ok(());
            };
            match top {
                Open::Struct(last) => match self.field(last)? {
                    Some((_, ty)) => next = Some(ty),
                    None => {
                        stack.pop();
                    }
                },
                Open::Items(_, 0) | Open::Pairs(_, _, 0) => {
                    stack.pop();
                }
                Open::Items(et, n) => {
                    *n -= 1;
                    // A bool in a list is one byte.
                    next = Some(if matches!(*et, TRUE | FALSE) {
                        BYTE
                    } else {
                        *et
                    });
                }
                Open::Pairs(k, v, n) => {
                    let ty = if *n % 2 == 0 { *k } else { *v };
                    *n -= 1;
                    next = Some(if matches!(ty, TRUE | FALSE) { BYTE } else { ty });
                }
            }
        }
    }
}

/// Check the schema in a Parquet footer (the Thrift `FileMetaData`, without the 8-byte tail):
/// `Err` with a reason when it is malformed where the schema is, or nests groups deeper than
/// `max_depth`.
pub fn check_nesting(metadata: &[u8], max_depth: usize) -> Result<(), String> {
    let mut r = Reader { b: metadata, i: 0 };
    let mut last = 0i16;
    while let Some((id, ty)) = r.field(&mut last)? {
        if id != 2 || ty != LIST {
            r.skip(ty)?;
            continue;
        }
        let (et, n) = r.list()?;
        if et != STRUCT {
            return Err("its footer's schema is not a list of elements".into());
        }
        // Children still expected by each open group, innermost last.
        let mut open: Vec<i64> = Vec::new();
        for i in 0..n {
            if i > 0 {
                while let Some(top) = open.last_mut() {
                    if *top > 0 {
                        *top -= 1;
                        break;
                    }
                    open.pop();
                }
            }
            let mut children = 0i64;
            let mut last = 0i16;
            while let Some((id, ty)) = r.field(&mut last)? {
                if id == 5 && ty == I32 {
                    children = r.zigzag()?;
                } else {
                    r.skip(ty)?;
                }
            }
            if children > 0 {
                open.push(children);
                // The root (the message) is not a level of nesting.
                if open.len() > max_depth + 1 {
                    return Err(format!(
                        "its schema nests groups more than {max_depth} levels deep"
                    ));
                }
            }
        }
        return Ok(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A footer with `depth` nested groups and one leaf, in Thrift compact encoding.
    fn footer(depth: usize) -> Vec<u8> {
        let mut b = vec![0x15, 0x02]; // field 1 (version): i32 1
        b.push(0x19); // field 2 (schema): list
        let n = depth + 2;
        b.push(0xfc); // list of structs, size follows
        let mut v = n as u64;
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
        let element = |children: Option<i32>, b: &mut Vec<u8>| {
            b.extend([0x48, 0x01, b'g']); // field 4 (name): binary "g"
            if let Some(c) = children {
                b.push(0x15); // field 5 (num_children): i32
                b.push(((c << 1) ^ (c >> 31)) as u8);
            }
            b.push(0x00);
        };
        element(Some(1), &mut b);
        for _ in 0..depth {
            element(Some(1), &mut b);
        }
        element(None, &mut b);
        b.extend([0x16, 0x02]); // field 3 (num_rows): i64 1
        b.push(0x00);
        b
    }

    #[test]
    fn refuses_a_schema_deeper_than_the_limit_without_recursing() {
        check_nesting(&footer(3), 64).unwrap();
        check_nesting(&footer(64), 64).unwrap();
        let e = check_nesting(&footer(65), 64).unwrap_err();
        assert_eq!(e, "its schema nests groups more than 64 levels deep");
        assert!(check_nesting(&footer(10_000), 64).is_err());
    }

    #[test]
    fn malformed_footers_are_errors_not_panics() {
        let good = footer(3);
        for cut in 0..good.len() {
            let _ = check_nesting(&good[..cut], 64);
        }
        // A struct nested in structs a million deep, in a field the check skips.
        let mut deep = vec![0x1c];
        deep.extend(std::iter::repeat_n(0x1c, 1_000_000));
        let e = check_nesting(&deep, 64).unwrap_err();
        assert!(e.contains("nests values more than 64 deep"), "{e}");
        assert!(check_nesting(&[0xff; 100], 64).is_err());
    }
}
