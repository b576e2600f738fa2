//! The viewer embeds noVNC from web/node_modules (npm, not copied source): say how to get it
//! instead of failing inside the embedding macro.
fn main() {
    println!("cargo:rerun-if-changed=web/node_modules/@novnc/novnc/package.json");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    if !std::path::Path::new("web/node_modules/@novnc/novnc/core/rfb.js").exists() {
        eprintln!(
            "error: web/node_modules is missing: run scripts/install-deps.sh (or `npm ci` in \
             web/) before building deskd; the viewer embeds noVNC from it"
        );
        std::process::exit(1);
    }
}
