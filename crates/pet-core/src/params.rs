//! Parameters by path: listing, reading and replacing the tensors of any module tree by their
//! dotted path (`encoder.layer.0.attention.self.query.weight`), the seam that BitFit, partial
//! tuning, checkpoints and weight loading share.
//!
//! An enum module (Burn's `#[derive(Module)]` on an enum of one-field variants, such as
//! pet-nlp's choice of backbone) is transparent in paths: it holds exactly one of its variants,
//! so the variant's name is no path segment and a wrapped module keeps the paths it has alone.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::error::{PetError, Result};

/// One float parameter of a module tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamEntry {
    /// Dotted path, e.g. `delta.embedding`.
    pub path: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Whether the parameter receives gradients (always `false` without autodiff).
    pub trainable: bool,
    /// The type of the module that holds it, as Burn names it (`Linear`, `Embedding`,
    /// `LayerNorm`, ...): what a [`KeyMap`](crate::blocks::hf_keys::KeyMap) reads to know which
    /// tensors PyTorch stores transposed.
    pub module: String,
}

impl ParamEntry {
    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Whether a module entered with `container` (Burn's `Struct:Name` / `Enum:Name`) is an enum
/// variant, which names no path segment.
pub fn is_enum_variant(container: &str) -> bool {
    container.starts_with("Enum:")
}

/// The dotted path of the module being visited; enum variants push an empty segment.
#[derive(Default)]
pub struct PathStack(Vec<(Option<String>, String)>);

impl PathStack {
    /// Enters the module `name` of type `container`.
    pub fn enter(&mut self, name: &str, container: &str) {
        let segment = (!is_enum_variant(container)).then(|| name.to_string());
        let module = container.strip_prefix("Struct:").unwrap_or(container).to_string();
        self.0.push((segment, module));
    }

    /// Leaves the innermost module.
    pub fn exit(&mut self) {
        self.0.pop();
    }

    /// The current dotted path.
    pub fn path(&self) -> String {
        self.0.iter().filter_map(|(s, _)| s.as_deref()).collect::<Vec<_>>().join(".")
    }

    /// The type of the innermost module (`Linear`, ...), empty at the root.
    pub fn module(&self) -> String {
        self.0.last().map(|(_, module)| module.clone()).unwrap_or_default()
    }
}

struct Lister {
    stack: PathStack,
    entries: Vec<ParamEntry>,
}

impl<B: Backend> ModuleVisitor<B> for Lister {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.stack.enter(name, container);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        self.entries.push(ParamEntry {
            path: self.stack.path(),
            shape: tensor.dims().to_vec(),
            trainable: tensor.is_require_grad(),
            module: self.stack.module(),
        });
    }
}

/// Every float parameter of `module`, in visiting order.
pub fn param_entries<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamEntry> {
    let mut lister = Lister { stack: PathStack::default(), entries: Vec::new() };
    module.visit(&mut lister);
    lister.entries
}

struct Reader<'a> {
    stack: PathStack,
    select: &'a dyn Fn(&ParamEntry) -> bool,
    tensors: BTreeMap<String, TensorData>,
}

impl<B: Backend> ModuleVisitor<B> for Reader<'_> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.stack.enter(name, container);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let entry = ParamEntry {
            path: self.stack.path(),
            shape: tensor.dims().to_vec(),
            trainable: tensor.is_require_grad(),
            module: self.stack.module(),
        };
        if (self.select)(&entry) {
            self.tensors.insert(entry.path, tensor.into_data().convert::<f32>());
        }
    }
}

/// The values of the float parameters that `select` keeps, as f32 data keyed by path.
pub fn read_params<B: Backend, M: Module<B>>(
    module: &M,
    select: &dyn Fn(&ParamEntry) -> bool,
) -> BTreeMap<String, TensorData> {
    let mut reader = Reader { stack: PathStack::default(), select, tensors: BTreeMap::new() };
    module.visit(&mut reader);
    reader.tensors
}

struct Writer<'a> {
    stack: PathStack,
    values: &'a BTreeMap<String, TensorData>,
    used: BTreeSet<String>,
    errors: Vec<PetError>,
}

impl<B: Backend> ModuleMapper<B> for Writer<'_> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.stack.enter(name, container);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.stack.path();
        let Some(data) = self.values.get(&path) else {
            return param;
        };
        self.used.insert(path.clone());
        let (id, tensor, mapper) = param.consume();
        let expected = tensor.dims().to_vec();
        if data.shape.as_slice() != expected.as_slice() {
            self.errors.push(PetError::ShapeMismatch {
                path,
                expected,
                found: data.shape.to_vec(),
            });
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let loaded = Tensor::<B, D>::from_data(data.clone(), &tensor.device());
        let loaded = if require_grad { loaded.require_grad() } else { loaded };
        Param::from_mapped_value(id, loaded, mapper)
    }
}

/// `module` with the parameters named in `values` replaced, keeping ids and trainability.
///
/// Returns the module and the set of keys of `values` that matched a parameter.
///
/// # Errors
/// [`PetError::ShapeMismatch`] for the first value whose shape differs from its parameter.
pub fn write_params<B: Backend, M: Module<B>>(
    module: M,
    values: &BTreeMap<String, TensorData>,
) -> Result<(M, BTreeSet<String>)> {
    let mut writer =
        Writer { stack: PathStack::default(), values, used: BTreeSet::new(), errors: Vec::new() };
    let module = module.map(&mut writer);
    match writer.errors.into_iter().next() {
        Some(error) => Err(error),
        None => Ok((module, writer.used)),
    }
}

struct GradSwitch<'a> {
    stack: PathStack,
    trainable: &'a dyn Fn(&str) -> bool,
}

impl<B: Backend> ModuleMapper<B> for GradSwitch<'_> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.stack.enter(name, container);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let trainable = (self.trainable)(&self.stack.path());
        param.set_require_grad(trainable)
    }
}

/// `module` with gradients switched on exactly for the parameters whose path `trainable` accepts
/// and off for all others, so frozen parameters get neither gradients nor optimizer state.
pub fn set_trainable<B: Backend, M: Module<B>>(module: M, trainable: &dyn Fn(&str) -> bool) -> M {
    module.map(&mut GradSwitch { stack: PathStack::default(), trainable })
}

/// `param` holding `value` instead, with the same id and the same trainability; `value` is
/// detached from any graph it came from.
pub fn replace_value<B: Backend, const D: usize>(
    param: Param<Tensor<B, D>>,
    value: Tensor<B, D>,
) -> Param<Tensor<B, D>> {
    let (id, old, mapper) = param.consume();
    let value = value.detach();
    let value = if old.is_require_grad() { value.require_grad() } else { value };
    Param::from_mapped_value(id, value, mapper)
}
