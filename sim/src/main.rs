use clap::Parser;

fn main() {
    let cli = match sim::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; every other parse failure is bad input,
            // which the contract says is exit 1 (clap's own code, 2, means "expectation not met").
            let _ = e.print();
            std::process::exit(if e.use_stderr() { sim::cli::EXIT_BAD_INPUT } else { sim::cli::EXIT_MET });
        }
    };
    std::process::exit(sim::cli::main(cli));
}
