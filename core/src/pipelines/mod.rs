//! Request → result flows. The CLI and the GUI call these; neither re-implements a step.

pub mod inpaint;
pub mod weather;
