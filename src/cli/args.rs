//! clap types: the global options and one `Args` struct per command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::graph::draw::Format;

/// CoreFlow runs workflows described in YAML: typed parameters, triggers and a DAG of jobs.
#[derive(Debug, Parser)]
#[command(name = "coreflow", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the command name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The environment: a state directory (default ./.coreflow)
    #[arg(long, global = true, env = "COREFLOW_ENV", value_name = "DIR_OR_URL")]
    pub env: Option<String>,
    /// Print machine-readable JSON
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print more
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// When to use colors (NO_COLOR is honoured by `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to color output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files without running anything
    Validate(ValidateArgs),
    /// Print a workflow's job graph
    Graph(GraphArgs),
    /// Print the JSON Schema of the workflow format
    Schema,
}

/// `coreflow validate FILE…`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files to check
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `coreflow graph FILE`
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
