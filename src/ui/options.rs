//! How the user asked progress to be shown: `--progress`, `--color`, `--quiet`, and what the
//! process environment says (`CI`, `GITHUB_ACTIONS`, `NO_COLOR`, whether stdout is a terminal).
//!
//! Parsing the command line is the CLI's job; this module turns its values and the environment
//! into one decision, so the rules live in one place and are testable without touching the
//! real environment.

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

/// `--progress auto|tty|plain|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// `tty` when stdout is a terminal and `CI` is not set, else `plain`.
    #[default]
    Auto,
    /// Live bars drawn with indicatif (drawn even when stdout is not a terminal, because the
    /// user asked for them).
    Tty,
    /// Timestamped lines without control characters.
    Plain,
    /// One JSON object per event and line.
    Json,
}

/// `--color auto|always|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// Colors on a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Colors even when `NO_COLOR` is set or stdout is not a terminal (live bars only: plain
    /// and JSON output never carry escape sequences).
    Always,
    Never,
}

/// The error for a value of `--progress` or `--color` that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown value `{value}`, expected one of {expected}")]
pub struct UnknownChoice {
    pub value: String,
    pub expected: &'static str,
}

impl ProgressMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Tty => "tty",
            ProgressMode::Plain => "plain",
            ProgressMode::Json => "json",
        }
    }
}

impl ColorChoice {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ColorChoice::Auto => "auto",
            ColorChoice::Always => "always",
            ColorChoice::Never => "never",
        }
    }
}

impl FromStr for ProgressMode {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ProgressMode::Auto,
            ProgressMode::Tty,
            ProgressMode::Plain,
            ProgressMode::Json,
        ]
        .into_iter()
        .find(|mode| mode.as_str() == s)
        .ok_or_else(|| UnknownChoice {
            value: s.to_owned(),
            expected: "`auto`, `tty`, `plain`, `json`",
        })
    }
}

impl FromStr for ColorChoice {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [ColorChoice::Auto, ColorChoice::Always, ColorChoice::Never]
            .into_iter()
            .find(|choice| choice.as_str() == s)
            .ok_or_else(|| UnknownChoice {
                value: s.to_owned(),
                expected: "`auto`, `always`, `never`",
            })
    }
}

impl fmt::Display for ProgressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ColorChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that decides how a run is shown.
///
/// [`UiOptions::from_env`] resolves `auto` values against the environment, so `mode` and
/// `color` hold what will happen. A value built by hand with `mode: Auto` means plain output
/// and `color: Auto` means no colors, since nothing is known about the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiOptions {
    pub mode: ProgressMode,
    pub color: ColorChoice,
    /// `--quiet`: only failures and the final result line (JSON output ignores it).
    pub quiet: bool,
    /// `GITHUB_ACTIONS` is set: plain output folds each job into a `::group::`.
    pub github_actions: bool,
    /// `CI` is set: `auto` never draws live bars.
    pub ci: bool,
}

impl Default for UiOptions {
    /// Plain output without colors, as in a test.
    fn default() -> Self {
        UiOptions {
            mode: ProgressMode::Plain,
            color: ColorChoice::Never,
            quiet: false,
            github_actions: false,
            ci: false,
        }
    }
}

impl UiOptions {
    /// Reads `CI`, `GITHUB_ACTIONS`, `NO_COLOR` and whether stdout is a terminal from this
    /// process.
    #[must_use]
    pub fn from_env(mode: ProgressMode, color: ColorChoice, quiet: bool) -> Self {
        UiOptions::from_vars(
            mode,
            color,
            quiet,
            |name| std::env::var_os(name),
            std::io::stdout().is_terminal(),
        )
    }

    /// As [`from_env`](UiOptions::from_env), with the environment given as a lookup function
    /// and the terminal check as a value.
    ///
    /// - `mode: Auto` becomes `Tty` when stdout is a terminal and `CI` is not set, else
    ///   `Plain`; an explicit mode is kept (`--progress tty` draws bars even into a pipe).
    /// - `color: Auto` becomes `Never` when `NO_COLOR` is set or stdout is not a terminal, else
    ///   `Always`; `--color always` wins over `NO_COLOR`.
    /// - A variable counts as set when it is present and not empty (as <https://no-color.org>
    ///   asks for `NO_COLOR`); `CI=false` and `CI=0` also count as unset, since some tools
    ///   write them to say "not CI".
    #[must_use]
    pub fn from_vars(
        mode: ProgressMode,
        color: ColorChoice,
        quiet: bool,
        var: impl Fn(&str) -> Option<OsString>,
        terminal: bool,
    ) -> Self {
        let is_set = |name: &str| {
            var(name).is_some_and(|value| !value.is_empty() && value != "false" && value != "0")
        };
        let ci = is_set("CI");
        let mode = match mode {
            ProgressMode::Auto if terminal && !ci => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            mode => mode,
        };
        let color = match color {
            ColorChoice::Auto if terminal && !is_set("NO_COLOR") => ColorChoice::Always,
            ColorChoice::Auto => ColorChoice::Never,
            color => color,
        };
        UiOptions {
            mode,
            color,
            quiet,
            github_actions: is_set("GITHUB_ACTIONS"),
            ci,
        }
    }

    /// The mode to use, never [`ProgressMode::Auto`].
    #[must_use]
    pub fn effective_mode(&self) -> ProgressMode {
        match self.mode {
            ProgressMode::Auto => ProgressMode::Plain,
            mode => mode,
        }
    }

    /// Whether live output may use colors.
    #[must_use]
    pub fn use_color(&self) -> bool {
        self.color == ColorChoice::Always
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::{ColorChoice, ProgressMode, UiOptions};

    fn options(
        mode: ProgressMode,
        color: ColorChoice,
        vars: &[(&str, &str)],
        tty: bool,
    ) -> UiOptions {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        UiOptions::from_vars(
            mode,
            color,
            false,
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            tty,
        )
    }

    #[test]
    fn auto_is_tty_only_on_a_terminal_outside_ci() {
        let auto = ProgressMode::Auto;
        let color = ColorChoice::Auto;
        assert_eq!(
            options(auto, color, &[], true).effective_mode(),
            ProgressMode::Tty
        );
        assert_eq!(
            options(auto, color, &[], false).effective_mode(),
            ProgressMode::Plain
        );
        let ci = options(auto, color, &[("CI", "true")], true);
        assert_eq!(ci.effective_mode(), ProgressMode::Plain);
        let not_ci = options(auto, color, &[("CI", "false")], true);
        assert_eq!(not_ci.effective_mode(), ProgressMode::Tty);
        let forced = options(ProgressMode::Tty, color, &[("CI", "1")], false);
        assert_eq!(forced.effective_mode(), ProgressMode::Tty);
    }

    #[test]
    fn no_color_disables_auto_but_not_always() {
        let mode = ProgressMode::Tty;
        assert!(options(mode, ColorChoice::Auto, &[], true).use_color());
        assert!(!options(mode, ColorChoice::Auto, &[], false).use_color());
        assert!(!options(mode, ColorChoice::Auto, &[("NO_COLOR", "1")], true).use_color());
        assert!(options(mode, ColorChoice::Auto, &[("NO_COLOR", "")], true).use_color());
        let by_hand = UiOptions {
            color: ColorChoice::Auto,
            ..UiOptions::default()
        };
        assert!(!by_hand.use_color());
        assert!(options(mode, ColorChoice::Always, &[("NO_COLOR", "1")], false).use_color());
        assert!(!options(mode, ColorChoice::Never, &[], true).use_color());
    }

    #[test]
    fn github_actions_is_detected() {
        let vars = [("GITHUB_ACTIONS", "true")];
        let opts = options(ProgressMode::Auto, ColorChoice::Auto, &vars, false);
        assert!(opts.github_actions);
        assert!(!options(ProgressMode::Auto, ColorChoice::Auto, &[], false).github_actions);
    }

    #[test]
    fn choices_parse() {
        assert_eq!(
            "json".parse::<ProgressMode>().ok(),
            Some(ProgressMode::Json)
        );
        assert_eq!(
            "never".parse::<ColorChoice>().ok(),
            Some(ColorChoice::Never)
        );
        let err = "fancy".parse::<ProgressMode>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown value `fancy`, expected one of `auto`, `tty`, `plain`, `json`"
        );
    }
}
