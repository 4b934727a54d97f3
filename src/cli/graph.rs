//! `coreflow graph FILE [--format text|dot|mermaid]`.

use crate::cli::args::{GlobalArgs, GraphArgs};
use crate::error::Error;
use crate::graph::draw::draw;
use crate::graph::plan::expand;
use crate::spec::load;

pub(super) fn run(_global: &GlobalArgs, args: &GraphArgs) -> Result<(), Error> {
    let loaded = load(&args.file).map_err(|e| Error::Invalid(Box::new(e)))?;
    let plan = expand(&loaded.workflow);
    super::output::print(&draw(&loaded.name, &plan, args.format))
}
