//! The pickle virtual machine: the opcode loop over `data`, building values in the arena of
//! [`super::Obj`] under [`super::Limits`]; GLOBAL names go through the allow-list
//! ([`super::Global`]) and anything else is refused on the spot.

use std::collections::HashMap;

use super::*;

// REDUCE / NEWOBJ / BUILD and persistent ids: how allowed torch names become values.
mod rebuild;

pub(super) struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run (for errors).
    at: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    items: usize,
    limits: Limits,
}

fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'i' => "INST",
        b'o' => "OBJ",
        b'P' => "PERSID",
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'g' => "GET",
        b'p' => "PUT",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

impl<'a> Vm<'a> {
    pub(super) fn new(data: &'a [u8], limits: Limits) -> Self {
        Vm {
            data,
            pos: 0,
            at: 0,
            objs: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            items: 0,
            limits,
        }
    }

    fn bad(&self, detail: impl Into<String>) -> PickleError {
        PickleError::Bad {
            at: self.at,
            detail: detail.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(PickleError::Truncated {
                at: self.data.len(),
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }

    fn len_prefixed(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        let n = usize::try_from(n).map_err(|_| PickleError::Truncated {
            at: self.data.len(),
        })?;
        self.take(n)
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                at: self.data.len(),
            })?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.bad("GLOBAL name is not text"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn utf8(&self, b: &[u8]) -> Result<String, PickleError> {
        String::from_utf8(b.to_vec()).map_err(|_| self.bad("string is not valid UTF-8"))
    }

    fn new_obj(&mut self, o: Obj) -> Result<Id, PickleError> {
        if self.objs.len() >= self.limits.max_objects {
            return Err(PickleError::Limit {
                at: self.at,
                what: "values",
                limit: self.limits.max_objects,
            });
        }
        let n = match &o {
            Obj::Tuple(v) | Obj::List(v) | Obj::Set(v) => v.len(),
            Obj::Dict(v) => v.len(),
            _ => 0,
        };
        self.count_items(n)?;
        self.objs.push(o);
        Ok((self.objs.len() - 1) as Id)
    }

    fn count_items(&mut self, n: usize) -> Result<(), PickleError> {
        self.items = self.items.saturating_add(n);
        if self.items > self.limits.max_items {
            return Err(PickleError::Limit {
                at: self.at,
                what: "container items",
                limit: self.limits.max_items,
            });
        }
        Ok(())
    }

    fn push(&mut self, id: Id) -> Result<(), PickleError> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(PickleError::Limit {
                at: self.at,
                what: "stack items",
                limit: self.limits.max_stack,
            });
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, o: Obj) -> Result<(), PickleError> {
        let id = self.new_obj(o)?;
        self.push(id)
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.bad("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.bad("stack underflow"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.bad("stack underflow"));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.bad("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.bad("no MARK to pop to"))?;
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let id = self.top()?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(PickleError::Limit {
                at: self.at,
                what: "memo entries",
                limit: self.limits.max_memo,
            });
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.bad(format!("memo key {key} was never stored")))?;
        self.push(id)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        match resolve(module, name) {
            Some(g) => self.push_new(Obj::Global(g)),
            None => Err(PickleError::Refused {
                at: self.at,
                global: format!("{module}.{name}"),
            }),
        }
    }

    pub(super) fn run(mut self) -> Result<Pickle, PickleError> {
        loop {
            self.at = self.pos;
            let op = self.byte()?;
            match op {
                0x80 => {
                    let v = self.byte()?;
                    if v > 5 {
                        return Err(self.bad(format!("pickle protocol {v} is not supported")));
                    }
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Pickle {
                        objs: self.objs,
                        root,
                    });
                }
                b'(' => {
                    if self.marks.len() >= self.limits.max_marks {
                        return Err(PickleError::Limit {
                            at: self.at,
                            what: "open MARKs",
                            limit: self.limits.max_marks,
                        });
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.push(t)?;
                }
                b'N' => self.push_new(Obj::None)?,
                0x88 => self.push_new(Obj::Bool(true))?,
                0x89 => self.push_new(Obj::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push_new(Obj::Int(v))?
                }
                b'K' => {
                    let v = self.byte()? as i64;
                    self.push_new(Obj::Int(v))?
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push_new(Obj::Int(v))?
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.byte()? as u64
                    } else {
                        self.u32()? as u64
                    };
                    let b = self.len_prefixed(n)?;
                    let o = if b.len() <= 8 {
                        // Little-endian two's complement, sign-extended.
                        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                            0xFF
                        } else {
                            0
                        };
                        let mut buf = [fill; 8];
                        buf[..b.len()].copy_from_slice(b);
                        Obj::Int(i64::from_le_bytes(buf))
                    } else {
                        Obj::BigInt
                    };
                    self.push_new(o)?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().unwrap_or_default());
                    self.push_new(Obj::Float(v))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as u64,
                        0x8c => self.byte()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.len_prefixed(n)?;
                    let s = self.utf8(b)?;
                    self.push_new(Obj::Str(s))?
                }
                // Python 2 str (BINSTRING / SHORT_BINSTRING): text when it is UTF-8.
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.u32()? as u64
                    } else {
                        self.byte()? as u64
                    };
                    let b = self.len_prefixed(n)?;
                    let o = match std::str::from_utf8(b) {
                        Ok(s) => Obj::Str(s.to_string()),
                        Err(_) => Obj::Bytes(b.to_vec()),
                    };
                    self.push_new(o)?
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as u64,
                        b'C' => self.byte()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.len_prefixed(n)?.to_vec();
                    self.push_new(Obj::Bytes(b))?
                }
                b')' => self.push_new(Obj::Tuple(Vec::new()))?,
                b']' => self.push_new(Obj::List(Vec::new()))?,
                b'}' => self.push_new(Obj::Dict(Vec::new()))?,
                0x8f => self.push_new(Obj::Set(Vec::new()))?,
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(self.pop()?);
                    }
                    v.reverse();
                    self.push_new(Obj::Tuple(v))?
                }
                b't' => {
                    let v = self.pop_mark()?;
                    self.push_new(Obj::Tuple(v))?
                }
                b'l' => {
                    let v = self.pop_mark()?;
                    self.push_new(Obj::List(v))?
                }
                0x91 => {
                    let v = self.pop_mark()?;
                    self.push_new(Obj::Set(v))?
                }
                b'd' => {
                    let v = self.pop_mark()?;
                    if v.len() % 2 != 0 {
                        return Err(self.bad("DICT with an odd number of items"));
                    }
                    let items = v.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    self.push_new(Obj::Dict(items))?
                }
                b'a' | b'e' | 0x90 => {
                    let new = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    let target = self.top()?;
                    self.count_items(new.len())?;
                    match &mut self.objs[target as usize] {
                        Obj::List(v) | Obj::Set(v) => v.extend(new),
                        o => {
                            let kind = o.kind();
                            return Err(self.bad(format!("APPEND to a {kind}")));
                        }
                    }
                }
                b's' | b'u' => {
                    let new = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![k, v]
                    } else {
                        self.pop_mark()?
                    };
                    if new.len() % 2 != 0 {
                        return Err(self.bad("SETITEMS with an odd number of items"));
                    }
                    let target = self.top()?;
                    self.count_items(new.len() / 2)?;
                    match &mut self.objs[target as usize] {
                        Obj::Dict(d) => d.extend(new.chunks_exact(2).map(|c| (c[0], c[1]))),
                        o => {
                            let kind = o.kind();
                            return Err(self.bad(format!("SETITEM on a {kind}")));
                        }
                    }
                }
                b'q' => {
                    let k = self.byte()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.byte()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Obj::Str(m), Obj::Str(n)) =
                        (&self.objs[module as usize], &self.objs[name as usize])
                    else {
                        return Err(self.bad("STACK_GLOBAL names are not strings"));
                    };
                    let (m, n) = (m.clone(), n.clone());
                    self.global(&m, &n)?
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let r = self.call(f, args)?;
                    self.push(r)?
                }
                0x81 | 0x92 => {
                    if op == 0x92 {
                        let kwargs = self.pop()?;
                        if !matches!(&self.objs[kwargs as usize], Obj::Dict(d) if d.is_empty()) {
                            return Err(self.bad("NEWOBJ_EX with keyword arguments"));
                        }
                    }
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    if self.objs[cls as usize] != Obj::Global(Global::OrderedDict) {
                        return Err(self.bad(format!(
                            "NEWOBJ on a {}; only collections.OrderedDict may be instantiated",
                            self.objs[cls as usize].kind()
                        )));
                    }
                    let r = self.call(cls, args)?;
                    self.push(r)?
                }
                b'b' => {
                    // Sets attributes in Python (an OrderedDict's `_metadata`, a parameter's
                    // state): nothing to keep for the weights.
                    self.pop()?;
                    let target = self.top()?;
                    if !matches!(self.objs[target as usize], Obj::Dict(_) | Obj::Tensor(_)) {
                        return Err(
                            self.bad(format!("BUILD on a {}", self.objs[target as usize].kind()))
                        );
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let s = self.persistent_load(pid)?;
                    self.push(s)?
                }
                _ => {
                    return Err(PickleError::Opcode {
                        at: self.at,
                        op,
                        name: opcode_name(op),
                    });
                }
            }
        }
    }
}
