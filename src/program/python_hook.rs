//! The Python hook of `leak-check` (sitecustomize.py beside this file): at interpreter exit it
//! records what the frameworks' caching allocators (PyTorch, CuPy, JAX) hold and releases their
//! caches, so the report tells memory a pool only cached from memory the program still
//! referenced (docs/memory.md). It reaches Python programs through `PYTHONPATH`, first.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::output::PrivateDir;

const SITECUSTOMIZE: &str = include_str!("sitecustomize.py");

/// Writes the hook into `dir` and returns the PYTHONPATH that puts it first.
pub fn install(dir: &PrivateDir, existing: Option<&str>) -> Result<String> {
    let sub = hook_dir(dir);
    std::fs::create_dir(&sub)?;
    std::fs::write(sub.join("sitecustomize.py"), SITECUSTOMIZE)?;
    Ok(python_path(&sub, existing))
}

fn python_path(hook: &Path, existing: Option<&str>) -> String {
    match existing.filter(|e| !e.is_empty()) {
        Some(e) => format!("{}:{e}", hook.display()),
        None => hook.display().to_string(),
    }
}

/// Where the hook lives in a private directory.
fn hook_dir(dir: &PrivateDir) -> PathBuf {
    dir.path().join("python")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_goes_first_on_the_python_path() {
        assert_eq!(python_path(Path::new("/d/python"), None), "/d/python");
        assert_eq!(
            python_path(Path::new("/d/python"), Some("/site:/x")),
            "/d/python:/site:/x"
        );
        let dir = PrivateDir::create().unwrap();
        let pp = install(&dir, Some("/x")).unwrap();
        assert!(pp.starts_with(hook_dir(&dir).to_str().unwrap()));
        assert!(hook_dir(&dir).join("sitecustomize.py").exists());
    }

    /// The hook chains to the sitecustomize it shadows, and a program that imports none of the
    /// frameworks writes nothing.
    #[test]
    fn hook_chains_and_stays_quiet_without_frameworks() {
        let Ok(status) = std::process::Command::new("python3")
            .arg("-c")
            .arg("pass")
            .status()
        else {
            eprintln!("skipped: no python3");
            return;
        };
        assert!(status.success());
        let dir = PrivateDir::create().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        std::fs::write(
            theirs.path().join("sitecustomize.py"),
            "import builtins\nbuiltins.THEIRS = 42\n",
        )
        .unwrap();
        let pp = install(&dir, theirs.path().to_str()).unwrap();
        let events = dir.write_file("events.jsonl", b"", 0o600).unwrap();
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg("import builtins, sys; print(builtins.THEIRS, 'sitecustomize' in sys.modules)")
            .env("PYTHONPATH", pp)
            .env("GPU_DOCTOR_SHIM_EVENTS", &events)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "42 True",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&events).unwrap(), b"");
    }

    /// With torch imported and initialised, the hook notes the pool, empties it, notes it again.
    #[test]
    fn hook_notes_and_empties_the_torch_cache() {
        if std::process::Command::new("python3")
            .arg("-c")
            .arg("pass")
            .status()
            .is_err()
        {
            eprintln!("skipped: no python3");
            return;
        }
        let dir = PrivateDir::create().unwrap();
        let fake = tempfile::tempdir().unwrap();
        // A stand-in for torch with the calls the hook makes.
        std::fs::write(
            fake.path().join("torch.py"),
            "class _Cuda:\n    reserved = 300\n    def is_initialized(self): return True\n    def device_count(self): return 1\n    def memory_allocated(self, d): return 100\n    def memory_reserved(self, d): return self.reserved\n    def synchronize(self, d): pass\n    def empty_cache(self): self.reserved = 100\ncuda = _Cuda()\n",
        )
        .unwrap();
        let pp = install(&dir, fake.path().to_str()).unwrap();
        let events = dir.write_file("events.jsonl", b"", 0o600).unwrap();
        let status = std::process::Command::new("python3")
            .arg("-c")
            .arg("import torch")
            .env("PYTHONPATH", pp)
            .env("GPU_DOCTOR_SHIM_EVENTS", &events)
            .status()
            .unwrap();
        assert!(status.success());
        let (ev, bad) = crate::program::read_events(&events);
        assert_eq!(bad, 0);
        let got: Vec<(String, Option<u64>, Option<u64>)> = ev
            .iter()
            .map(|e| (e.phase.clone().unwrap(), e.in_use, e.reserved))
            .collect();
        assert_eq!(
            got,
            vec![
                ("before".to_string(), Some(100), Some(300)),
                ("after".to_string(), Some(100), Some(100))
            ]
        );
        assert!(
            ev.iter()
                .all(|e| e.ev == "pool" && e.framework.as_deref() == Some("torch"))
        );
        assert!(ev[0].t_us > 0 && ev[0].tid > 0);
    }
}
