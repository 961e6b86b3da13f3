//! Web benchmark (written next).
fn main() {}
