//! Talking to a person at a terminal: asking before a change, and one line of progress.
//! Neither happens when stdin or stderr is a pipe, or in Lambda.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::anyhow;

use super::{usage, Failure};

/// Whether we may ask a question: both stdin and stderr are a terminal.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A change that was neither confirmed with `--yes` nor can be asked about.
pub fn needs_yes() -> Failure {
    usage(anyhow!(
        "this changes the registry; pass --yes to confirm, or run it on a terminal to be asked"
    ))
}

pub fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// One line of progress on stderr, only when stderr is a terminal.
pub struct Progress {
    total: usize,
    enabled: bool,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            total,
            enabled: std::io::stderr().is_terminal()
                && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none(),
        }
    }

    pub fn show(&self, i: usize, repo: &str, phase: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K[{}/{}] {repo}: {phase}…", i + 1, self.total);
            let _ = std::io::stderr().flush();
        }
    }

    pub fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
