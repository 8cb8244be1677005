//! `edge-auth`: the operator CLI (see `edge_auth_tools::cli`).

fn main() -> std::process::ExitCode {
    edge_auth_tools::cli::main()
}
