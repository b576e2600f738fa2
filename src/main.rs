fn main() {
    eprintln!("deskd: server wiring pending");
}
