use clap::Parser;

fn main() {
    let cli = sim::cli::Cli::parse();
    std::process::exit(sim::cli::main(cli));
}
