//! A pickle reader for PyTorch state dicts that never executes anything.
//!
//! It is a pickle virtual machine over a small subset of opcodes (protocols 2 to 5: what
//! `torch.save` writes), building plain values in an arena. Python's unpickler imports any
//! `module.name` a GLOBAL opcode asks for and calls it on REDUCE, which is how a pickle runs
//! code; here a GLOBAL is looked up in a fixed allow-list ([`Global`]) and anything else is
//! refused on the spot, before any later opcode is read. REDUCE on an allowed name builds a
//! value (a dict, a tensor description); nothing is ever imported or called.
//!
//! Values live in one arena and refer to each other by index, so shared and even cyclic
//! structures cost nothing extra, dropping is flat (no recursion on deep nesting) and every
//! allocation is counted against [`Limits`]: a hostile file gets an error, not the machine's
//! memory.

use std::collections::HashMap;
use std::fmt;

mod vm;

/// Index of a value in [`Pickle::objs`].
pub type Id = u32;

/// Element types of torch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    Complex64,
    Complex128,
    QInt8,
    QUInt8,
    QInt32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::Complex64 => 8,
            DType::F32 | DType::I32 | DType::QInt32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool | DType::QInt8 | DType::QUInt8 => 1,
            DType::Complex128 => 16,
        }
    }

    /// Real floating-point types (converted to f32); the rest are skipped.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }

    /// torch's name: float32, int64, ...
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
            DType::Complex64 => "complex64",
            DType::Complex128 => "complex128",
            DType::QInt8 => "qint8",
            DType::QUInt8 => "quint8",
            DType::QInt32 => "qint32",
        }
    }

    fn from_storage(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "DoubleStorage" => DType::F64,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            "ComplexFloatStorage" => DType::Complex64,
            "ComplexDoubleStorage" => DType::Complex128,
            "QInt8Storage" => DType::QInt8,
            "QUInt8Storage" => DType::QUInt8,
            "QInt32Storage" => DType::QInt32,
            _ => return None,
        })
    }

    fn from_torch_attr(name: &str) -> Option<DType> {
        Some(match name {
            "float32" | "float" => DType::F32,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "float64" | "double" => DType::F64,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            "complex64" | "cfloat" => DType::Complex64,
            "complex128" | "cdouble" => DType::Complex128,
            _ => return None,
        })
    }
}

/// The only names a GLOBAL / STACK_GLOBAL may import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: REDUCE / NEWOBJ give a dict.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2` (and the older `_rebuild_tensor`): a tensor view.
    RebuildTensor { v2: bool },
    /// `torch._utils._rebuild_parameter(_with_state)`: the tensor it wraps.
    RebuildParameter { with_state: bool },
    /// `torch.FloatStorage` and friends: the element type in a persistent id.
    StorageType(DType),
    /// `torch.float32` and friends (may appear as plain values).
    Dtype(DType),
}

/// What the allow-list says, for error messages.
pub const ALLOWED: &str = "collections.OrderedDict, torch._utils._rebuild_tensor_v2, \
     torch._utils._rebuild_tensor, torch._utils._rebuild_parameter, \
     torch._utils._rebuild_parameter_with_state, torch.<Type>Storage and torch dtypes";

fn resolve(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor { v2: true },
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor { v2: false },
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter { with_state: false },
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Global::RebuildParameter { with_state: true }
        }
        ("torch", n) => match DType::from_storage(n) {
            Some(d) => Global::StorageType(d),
            None => Global::Dtype(DType::from_torch_attr(n)?),
        },
        _ => return None,
    })
}

/// A storage named by a persistent id: `data/<key>` in the archive, `numel` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub dtype: DType,
    pub key: String,
    pub numel: u64,
}

/// A tensor as a strided view of a storage (elements, not bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

/// A value built by the VM. Containers hold ids of other values.
#[derive(Clone, Debug, PartialEq)]
pub enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64 (kept only as "some integer").
    BigInt,
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Any dict (plain or OrderedDict), items in insertion order; a repeated key appears twice
    /// and the later one wins when read.
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Obj {
    /// Python-ish name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) | Obj::BigInt => "int",
            Obj::Float(_) => "float",
            Obj::Str(_) => "str",
            Obj::Bytes(_) => "bytes",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Set(_) => "set",
            Obj::Global(_) => "class or function",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
        }
    }
}

/// Caps on what a pickle may make the reader allocate.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Values in the arena (every opcode makes at most one).
    pub max_objects: usize,
    /// Items on the stack at once.
    pub max_stack: usize,
    /// Memo entries.
    pub max_memo: usize,
    /// Open MARKs at once.
    pub max_marks: usize,
    /// Items in all containers together.
    pub max_items: usize,
    /// Dimensions of one tensor.
    pub max_ndim: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_objects: 1 << 22,
            max_stack: 1 << 22,
            max_memo: 1 << 22,
            max_marks: 1 << 16,
            max_items: 1 << 24,
            max_ndim: 64,
        }
    }
}

/// Why a pickle was not read; `at` is the byte offset of the opcode in data.pkl.
#[derive(Clone, Debug, PartialEq)]
pub enum PickleError {
    /// A GLOBAL / STACK_GLOBAL outside the allow-list.
    Refused { at: usize, global: String },
    /// A byte that is no pickle opcode, or one this reader does not run.
    Opcode {
        at: usize,
        op: u8,
        name: Option<&'static str>,
    },
    /// The pickle ends inside an opcode or without STOP.
    Truncated { at: usize },
    /// A [`Limits`] cap was reached.
    Limit {
        at: usize,
        what: &'static str,
        limit: usize,
    },
    /// Anything else malformed.
    Bad { at: usize, detail: String },
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Refused { at, global } => write!(
                f,
                "refused: data.pkl (byte {at}) imports `{global}`, which is not on the \
                 allow-list for a weights file ({ALLOWED}). Nothing was run. The file may be \
                 malicious, or it holds more than weights (a whole pickled model or training \
                 state): load it only with Python code you trust and save the state dict alone \
                 with torch.save(model.state_dict(), path)"
            ),
            PickleError::Opcode { at, op, name } => match name {
                Some(n) => write!(
                    f,
                    "data.pkl (byte {at}): pickle opcode {n} (0x{op:02x}) is not supported in a \
                     weights file"
                ),
                None => write!(
                    f,
                    "data.pkl (byte {at}): unknown pickle opcode 0x{op:02x} (corrupt file?)"
                ),
            },
            PickleError::Truncated { at } => write!(
                f,
                "data.pkl is truncated: it ends at byte {at} inside an opcode or before STOP"
            ),
            PickleError::Limit { at, what, limit } => write!(
                f,
                "data.pkl (byte {at}): more than {limit} {what}; refusing to read further \
                 (limit against files that would exhaust memory)"
            ),
            PickleError::Bad { at, detail } => write!(f, "data.pkl (byte {at}): {detail}"),
        }
    }
}

impl std::error::Error for PickleError {}

/// The values a pickle built, and the one it returned.
#[derive(Debug)]
pub struct Pickle {
    pub objs: Vec<Obj>,
    pub root: Id,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Obj {
        &self.objs[id as usize]
    }

    /// The string a value holds, if it is one.
    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A dict's items with string keys, later duplicates replacing earlier ones (Python's
    /// semantics), in first-insertion order. `None` if `id` is no dict.
    pub fn dict_items(&self, id: Id) -> Option<Vec<(Option<&str>, Id)>> {
        let Obj::Dict(items) = self.get(id) else {
            return None;
        };
        let mut out: Vec<(Option<&str>, Id)> = Vec::with_capacity(items.len());
        let mut index: HashMap<&str, usize> = HashMap::new();
        for &(k, v) in items {
            match self.str(k) {
                Some(s) => match index.get(s) {
                    Some(&i) => out[i].1 = v,
                    None => {
                        index.insert(s, out.len());
                        out.push((Some(s), v));
                    }
                },
                None => out.push((None, v)),
            }
        }
        Some(out)
    }
}

/// Runs the pickle in `data` and returns the values it built and its result.
pub fn load(data: &[u8], limits: Limits) -> Result<Pickle, PickleError> {
    vm::Vm::new(data, limits).run()
}

#[cfg(test)]
mod tests;
