//! Finding things on disk: the repository root and the executables the stack runs.

use std::path::{Path, PathBuf};

use super::error::StackError;

/// The repository root: env `EDGE_AUTH_ROOT`, else the nearest directory at or above the
/// current one holding a `wrangler.toml` or a `Cargo.toml` with a `[workspace]` table.
pub fn repo_root() -> Result<PathBuf, StackError> {
    if let Some(root) = std::env::var_os("EDGE_AUTH_ROOT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(root));
    }
    let cwd = std::env::current_dir().map_err(|e| StackError::io("reading the current directory", e))?;
    find_root_from(&cwd).ok_or_else(|| {
        StackError::msg(format!(
            "no repository root at or above {} (looked for wrangler.toml or a Cargo.toml with [workspace]); set EDGE_AUTH_ROOT",
            cwd.display()
        ))
    })
}

/// The nearest directory at or above `start` that looks like the repository root.
pub fn find_root_from(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| is_root(dir)).map(Path::to_path_buf)
}

fn is_root(dir: &Path) -> bool {
    if dir.join("wrangler.toml").is_file() {
        return true;
    }
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
}

/// An executable that ships with the tools: env `env_var` if set, else `name` next to the
/// current executable.
pub fn sibling_tool(name: &str, env_var: &str) -> Result<PathBuf, StackError> {
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| StackError::io("locating the current executable", e))?;
    let dir = exe.parent().ok_or_else(|| StackError::msg("the current executable has no directory"))?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(StackError::msg(format!(
            "{name} not found at {} (build it with `cargo build -p edge-auth-tools`, or set {env_var})",
            path.display()
        )))
    }
}

/// A program to run: env `env_var` if set, else `default` (a path or a name looked up in PATH).
pub fn program(default: impl Into<PathBuf>, env_var: &str) -> PathBuf {
    std::env::var_os(env_var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| default.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_workspace_root_from_a_subdirectory() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let root = find_root_from(&here).unwrap();
        assert_eq!(root, Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    }
}
