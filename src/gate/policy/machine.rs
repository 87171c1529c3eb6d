//! Serving evaluations run on regorus' register VM: the bundle's entrypoint is compiled once
//! per bundle into a VM program, which evaluates the default bundle several times faster
//! than regorus' tree-walking interpreter. The interpreter still runs policy tests (the VM
//! has no `with`) and `clawgate policy eval`.

use std::sync::Arc;
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};

use super::ENTRYPOINT;

/// Far above what any decision of a sane bundle executes; the time budget is the real bound.
const MAX_INSTRUCTIONS: usize = 50_000_000;

/// The entrypoint compiled for the VM, with the bundle's data.
pub struct CompiledBundle {
    compiled: regorus::CompiledPolicy,
    program: Arc<Program>,
    data: regorus::Value,
    budget: Duration,
}

impl CompiledBundle {
    /// Compile the engine's entrypoint; `budget` bounds each evaluation.
    pub fn compile(engine: &mut regorus::Engine, budget: Duration) -> Result<CompiledBundle, String> {
        let entry: regorus::Rc<str> = regorus::Rc::from(ENTRYPOINT);
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| format!("{e:#}"))?;
        let program =
            Compiler::compile_from_policy(&compiled, &[ENTRYPOINT]).map_err(|e| format!("{e:#}"))?;
        Ok(CompiledBundle {
            compiled,
            program,
            data: engine.get_data(),
            budget,
        })
    }

    /// A VM ready to evaluate this bundle (one per worker thread, reused).
    pub fn machine(&self) -> Result<RegoVM, String> {
        let mut vm = RegoVM::new_with_policy(self.compiled.clone());
        vm.load_program(self.program.clone());
        vm.set_data(self.data.clone()).map_err(|e| format!("{e:#}"))?;
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm.set_execution_timer_config(Some(super::bundle::timer(self.budget)));
        Ok(vm)
    }
}

/// Evaluate the entrypoint for one input on `vm`.
pub fn evaluate(vm: &mut RegoVM, input: regorus::Value) -> anyhow::Result<regorus::Value> {
    vm.set_input(input);
    Ok(vm.execute_entry_point_by_name(ENTRYPOINT)?)
}
