// The default policy bundle is embedded with include_dir!; rebuild whenever it changes.
fn main() {
    println!("cargo:rerun-if-changed=policies");
}
