//! `coreflow graph FILE [--format text|dot|mermaid]`.

use crate::cli::args::{GlobalArgs, GraphArgs};
use crate::error::Error;
use crate::graph::draw::draw;
use indexmap::IndexMap;

use crate::engine::setup::axis_renderer;
use crate::graph::plan::expand;
use crate::spec::load;
use crate::spec::matrix::unknown_axes;
use crate::spec::params::{self, Overrides};

pub(super) fn run(_global: &GlobalArgs, args: &GraphArgs) -> Result<(), Error> {
    let loaded = load(&args.file).map_err(|e| Error::Invalid(Box::new(e)))?;
    // Template axes are drawn from the parameters' defaults, when every parameter has one.
    let plan = match params::resolve(&loaded.workflow, &IndexMap::new(), &Overrides::default()) {
        Ok(values) => expand(&loaded.workflow, &axis_renderer(&values)),
        Err(_) => expand(&loaded.workflow, &unknown_axes),
    };
    super::output::print(&draw(&loaded.name, &plan, args.format))
}
