//! The settings file `/etc/gateway/gateway.env`, read the way systemd's `EnvironmentFile=` reads
//! it, so the operator commands (`status`, `doctor`, `worklist`) see what the service sees.
//! Written by hand: the format is a dozen lines of rules and no crate follows systemd's.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where the .deb installs the settings (`GATEWAY_ENV_FILE` points elsewhere).
pub const DEFAULT_PATH: &str = "/etc/gateway/gateway.env";

/// The settings file to use: `GATEWAY_ENV_FILE`, else [`DEFAULT_PATH`].
pub fn path() -> PathBuf {
    std::env::var_os("GATEWAY_ENV_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// One `NAME=value` assignment and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub line: usize,
    pub name: String,
    pub value: String,
}

/// A line systemd would not accept, with its number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {why}: {text:?}")]
pub struct LineError {
    pub line: usize,
    pub text: String,
    pub why: &'static str,
}

/// The assignments in `text`, and the lines that are not assignments. Blank lines and lines
/// starting with `#` or `;` are comments; a value may be wrapped in single or double quotes.
pub fn parse(text: &str) -> (Vec<Setting>, Vec<LineError>) {
    let mut settings = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let error = |why| LineError {
            line,
            text: trimmed.to_string(),
            why,
        };
        let Some((name, value)) = trimmed.split_once('=') else {
            errors.push(error("not NAME=value"));
            continue;
        };
        let name = name.trim();
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            errors.push(error("not a variable name (letters, digits and _)"));
            continue;
        }
        settings.push(Setting {
            line,
            name: name.to_string(),
            value: unquote(value.trim()).to_string(),
        });
    }
    (settings, errors)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// Puts the file's settings into this process's environment, each only where the environment
/// does not already set it (an explicit `NAME=… gateway status` wins). A missing or unreadable
/// file changes nothing: the defaults apply, as they would for the service.
///
/// Call before any thread starts (it sets environment variables).
pub fn load_into_env(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for setting in parse(&text).0 {
        if std::env::var_os(&setting.name).is_none() {
            std::env::set_var(&setting.name, &setting.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_assignments_like_systemd() {
        let text = "# comment\n; also\n\nMWL_PORT=104\n  PACS_AET = \"STORE ME\"\nSIGNING_KEY=\nNAME='x'\n";
        let (settings, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        let pairs: Vec<_> = settings
            .iter()
            .map(|s| (s.line, s.name.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (4, "MWL_PORT", "104"),
                (5, "PACS_AET", "STORE ME"),
                (6, "SIGNING_KEY", ""),
                (7, "NAME", "x"),
            ]
        );
    }

    #[test]
    fn reports_lines_that_are_not_assignments() {
        let (settings, errors) = parse("MWL_PORT 104\n1X=2\nOK=1\nexport A=b\n");
        assert_eq!(settings.len(), 1);
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }
}
