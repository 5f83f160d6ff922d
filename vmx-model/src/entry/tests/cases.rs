use crate::testkit::Machine;
#[test]
fn placeholder() {
    let _ = Machine::intel();
}
