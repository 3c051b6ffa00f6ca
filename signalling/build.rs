//! Embed every file under clients/web (at /) and clients/console (at /console/) into the binary,
//! so the binary alone serves both clients.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn mime(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn main() {
    let mut code = String::from("pub static WEB_ASSETS: &[(&str, &[u8], &str)] = &[\n");
    // The officials' client at /, the command-centre console at /console/.
    for (dir, prefix) in [("web", "/"), ("console", "/console/")] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../clients")
            .join(dir)
            .canonicalize()
            .unwrap_or_else(|_| panic!("clients/{dir} exists"));
        println!("cargo:rerun-if-changed={}", root.display());
        let mut files = Vec::new();
        walk(&root, &mut files);
        files.sort();
        for f in &files {
            println!("cargo:rerun-if-changed={}", f.display());
            let rel = f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            writeln!(code, "    (\"{prefix}{rel}\", include_bytes!({:?}), {:?}),", f.display().to_string(), mime(f))
                .unwrap();
        }
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("web_assets.rs");
    std::fs::write(out, code).unwrap();
}
