//! The sans-IO protocol core: datagrams and `now` in; transmits, timer deadlines and events out.
//! Nothing here opens a socket, reads a clock or spawns a task.

pub mod ids;
pub mod wire;
