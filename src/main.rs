fn main() {
    std::process::exit(coreflow::cli::main());
}
