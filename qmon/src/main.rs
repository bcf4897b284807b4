fn main() {
    println!("qmon");
}
