fn main() -> std::process::ExitCode {
    nhid::cli::run()
}
