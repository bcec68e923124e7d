//! What an inference costs: instructions (SysTick under `-icount shift=0`;
//! cycles on real silicon),
//! peak stack (painted before, scanned after) and static RAM (linker
//! symbols).

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;

/// What a SysTick tick is worth, from `LASAGNA_TICK_SCALE` (build.rs):
/// SysTick counts the core clock, and under QEMU's `-icount shift=0` one
/// instruction takes one virtual nanosecond, so a tick is 10^9 / clock
/// instructions: 40 on the MPS2 board (25 MHz), 125/21 on the
/// netduinoplus2 (168 MHz). On real silicon a tick is one core cycle.
mod tick {
    include!(concat!(env!("OUT_DIR"), "/tick_scale.rs"));
}

/// `ticks` in counted units (instructions, or cycles on real silicon),
/// rounded down.
pub fn scaled(ticks: u64) -> u64 {
    ticks * tick::NUM / tick::DEN
}

const RELOAD: u32 = 0x00FF_FFFF;
const PAINT: u32 = 0x5A5A_A5A5;

/// Wrapping SysTick reads. Each measured span must stay under 2^24 ticks
/// (671 M instructions); the total is accumulated in 64 bits.
pub struct Counter {
    total: u64,
}

impl Counter {
    /// Starts SysTick free-running on the core clock.
    pub fn start() -> Counter {
        // SAFETY: nothing else uses SysTick in this firmware.
        let mut syst = unsafe { cortex_m::Peripherals::steal() }.SYST;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_counter();
        Counter { total: 0 }
    }

    /// The current count (counts down).
    #[inline(always)]
    pub fn now(&self) -> u32 {
        SYST::get_current()
    }

    /// Ticks since `t0`, added to the total.
    #[inline(always)]
    pub fn since(&mut self, t0: u32) -> u32 {
        let t1 = SYST::get_current();
        let d = t0.wrapping_sub(t1) & RELOAD;
        self.total += u64::from(d);
        d
    }

    /// Sum of all spans, in instructions (cycles on real silicon).
    pub fn total(&self) -> u64 {
        scaled(self.total)
    }
}

extern "C" {
    static mut __sheap: u32;
    static _stack_start: u32;
    static mut __sdata: u32;
    static mut __ebss: u32;
}

fn sp() -> usize {
    cortex_m::register::msp::read() as usize
}

/// Fills the free RAM between the end of the statics and the current stack
/// pointer (less a margin for this function) with a pattern.
pub fn paint_stack() {
    // SAFETY: the region between `__sheap` (end of .bss/.uninit; this
    // firmware has no heap) and the live stack is unused memory.
    unsafe {
        let mut p = core::ptr::addr_of_mut!(__sheap);
        let end = (sp() - 64) as *mut u32;
        while p < end {
            p.write_volatile(PAINT);
            p = p.add(1);
        }
    }
}

/// Bytes of stack ever used: from the top of RAM down to the lowest word
/// whose paint was overwritten.
pub fn peak_stack() -> usize {
    // SAFETY: reads the painted region, which nothing else owns.
    unsafe {
        let top = core::ptr::addr_of!(_stack_start) as usize;
        let mut p: *const u32 = core::ptr::addr_of!(__sheap);
        while (p as usize) < top && p.read_volatile() == PAINT {
            p = p.add(1);
        }
        top - p as usize
    }
}

/// `.data` + `.bss` bytes.
pub fn static_ram() -> usize {
    (core::ptr::addr_of!(__ebss) as usize) - (core::ptr::addr_of!(__sdata) as usize)
}

/// RAM the firmware is linked for: from the start of the statics to the
/// top of the stack.
pub fn ram_bytes() -> usize {
    (core::ptr::addr_of!(_stack_start) as usize) - (core::ptr::addr_of!(__sdata) as usize)
}
