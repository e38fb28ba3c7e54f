#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    nhid::cli::run()
}
