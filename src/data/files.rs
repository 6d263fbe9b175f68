//! Image files named on the command line: files and folders (searched recursively for
//! .jpg/.jpeg/.png), each image identified by its file stem (ISIC ids: `ISIC_0024310`).

use crate::error::{Result, file_err};
use crate::io::walk::{Walk, walk};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn is_image_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// (id, path) of every image under `inputs`, sorted by id. Duplicate ids are an error naming
/// both files; an empty result is an error naming what was searched.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<(String, PathBuf)>> {
    let mut paths = Vec::new();
    for p in inputs {
        if p.is_dir() {
            paths.extend(
                walk(p, Walk::FILES)?
                    .into_iter()
                    .filter(|f| is_image_file(f)),
            );
        } else if p.exists() {
            paths.push(p.clone());
        } else {
            return Err(file_err(p, "no such file or folder"));
        }
    }
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let id = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| file_err(&p, "file has no name"))?;
        if let Some(prev) = seen.insert(id.clone(), p.clone()) {
            return Err(file_err(
                &p,
                format!("duplicate image id '{id}' (also {})", prev.display()),
            ));
        }
        out.push((id, p));
    }
    if out.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(file_err(
            names.join(", "),
            "no images found (looked for .jpg, .jpeg, .png files)",
        ));
    }
    out.sort();
    Ok(out)
}
