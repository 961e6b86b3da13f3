//! The `agentbus` binary; everything it does lives in the `agentbus_cli` library.

fn main() -> std::process::ExitCode {
    agentbus_cli::main()
}
