//! What the allowed torch names do when a pickle calls them (REDUCE / NEWOBJ) and what a
//! persistent id refers to: each builds a value in the arena from its checked arguments and
//! runs nothing. Split from the opcode loop in `vm.rs`.

use super::*;

impl Vm<'_> {
    fn int(&self, id: Id, what: &str) -> Result<i64, PickleError> {
        match &self.objs[id as usize] {
            Obj::Int(v) => Ok(*v),
            Obj::Bool(b) => Ok(*b as i64),
            o => Err(self.bad(format!("{what} must be an int, found {}", o.kind()))),
        }
    }

    fn dims(&self, id: Id, what: &str) -> Result<Vec<u64>, PickleError> {
        let (Obj::Tuple(v) | Obj::List(v)) = &self.objs[id as usize] else {
            return Err(self.bad(format!(
                "tensor {what} must be a tuple, found {}",
                self.objs[id as usize].kind()
            )));
        };
        if v.len() > self.limits.max_ndim {
            return Err(PickleError::Limit {
                at: self.at,
                what: "tensor dimensions",
                limit: self.limits.max_ndim,
            });
        }
        v.iter()
            .map(|&d| {
                let x = self.int(d, what)?;
                u64::try_from(x).map_err(|_| self.bad(format!("negative tensor {what} {x}")))
            })
            .collect()
    }

    /// REDUCE / NEWOBJ on an allowed name: builds the value, runs nothing.
    pub(super) fn call(&mut self, f: Id, args: Id) -> Result<Id, PickleError> {
        let Obj::Global(g) = self.objs[f as usize] else {
            return Err(self.bad(format!(
                "REDUCE on a {}, not on an allowed function",
                self.objs[f as usize].kind()
            )));
        };
        let Obj::Tuple(a) = &self.objs[args as usize] else {
            return Err(self.bad("REDUCE arguments are not a tuple"));
        };
        let a = a.clone();
        match g {
            Global::OrderedDict => {
                let mut items = Vec::new();
                if let Some(&src) = a.first() {
                    let (Obj::List(pairs) | Obj::Tuple(pairs)) = &self.objs[src as usize] else {
                        return Err(self.bad("OrderedDict(...) argument is not a list of pairs"));
                    };
                    for &p in pairs {
                        match &self.objs[p as usize] {
                            Obj::Tuple(kv) | Obj::List(kv) if kv.len() == 2 => {
                                items.push((kv[0], kv[1]))
                            }
                            _ => return Err(self.bad("OrderedDict(...) item is not a pair")),
                        }
                    }
                }
                self.new_obj(Obj::Dict(items))
            }
            Global::RebuildTensor { v2 } => {
                let ok = if v2 {
                    (6..=7).contains(&a.len())
                } else {
                    a.len() == 4
                };
                if !ok {
                    return Err(self.bad(format!(
                        "_rebuild_tensor{} takes {} arguments, got {}",
                        if v2 { "_v2" } else { "" },
                        if v2 { "6 or 7" } else { "4" },
                        a.len()
                    )));
                }
                let Obj::Storage(storage) = &self.objs[a[0] as usize] else {
                    return Err(self.bad(format!(
                        "tensor storage is a {}, not a persistent storage reference",
                        self.objs[a[0] as usize].kind()
                    )));
                };
                let storage = storage.clone();
                let offset = self.int(a[1], "storage offset")?;
                let offset = u64::try_from(offset)
                    .map_err(|_| self.bad(format!("negative storage offset {offset}")))?;
                let size = self.dims(a[2], "size")?;
                let stride = self.dims(a[3], "stride")?;
                if size.len() != stride.len() {
                    return Err(self.bad(format!(
                        "tensor size has {} dimensions but stride has {}",
                        size.len(),
                        stride.len()
                    )));
                }
                self.new_obj(Obj::Tensor(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                }))
            }
            Global::RebuildParameter { with_state } => {
                let n = if with_state { 4 } else { 3 };
                if a.len() != n {
                    return Err(self.bad(format!(
                        "_rebuild_parameter takes {n} arguments, got {}",
                        a.len()
                    )));
                }
                match self.objs[a[0] as usize] {
                    Obj::Tensor(_) => Ok(a[0]),
                    ref o => {
                        Err(self.bad(format!("parameter data is a {}, not a tensor", o.kind())))
                    }
                }
            }
            Global::StorageType(d) | Global::Dtype(d) => Err(self.bad(format!(
                "torch.{} is not callable in a weights file",
                d.name()
            ))),
        }
    }

    pub(super) fn persistent_load(&mut self, pid: Id) -> Result<Id, PickleError> {
        let Obj::Tuple(t) = &self.objs[pid as usize] else {
            return Err(self.bad("persistent id is not a tuple"));
        };
        let t = t.clone();
        let fields: Vec<&Obj> = t.iter().map(|&i| &self.objs[i as usize]).collect();
        let storage = match fields.as_slice() {
            [
                Obj::Str(tag),
                Obj::Global(Global::StorageType(dtype)),
                key,
                _location,
                numel,
            ] if tag == "storage" => {
                let key = match key {
                    Obj::Str(s) => s.clone(),
                    Obj::Int(i) => i.to_string(),
                    _ => return Err(self.bad("storage key is not a string")),
                };
                let numel = match numel {
                    Obj::Int(n) if *n >= 0 => *n as u64,
                    _ => return Err(self.bad("storage size is not a non-negative int")),
                };
                StorageRef {
                    dtype: *dtype,
                    key,
                    numel,
                }
            }
            _ => {
                return Err(self.bad(
                    "unsupported persistent id (expected ('storage', torch.<Type>Storage, key, \
                     location, numel))",
                ));
            }
        };
        self.new_obj(Obj::Storage(storage))
    }
}
