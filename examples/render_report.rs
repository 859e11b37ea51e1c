//! Renders a saved report as the terminal tables: `cargo run --example render_report FILE`.
fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: render_report REPORT.json");
    let r = gpu_doctor::output::read_report(std::path::Path::new(&path)).unwrap_or_else(|e| {
        eprintln!("{e:#}");
        std::process::exit(2)
    });
    print!("{}", gpu_doctor::render::table::render(&r, false));
}
