/*
 * A Multiboot (v1) test kernel for the BIOS route (test/e2e/routes.test.ts): whatever loaded it (syslinux's
 * mboot.c32 from ISOLINUX, here from iPXE's emulated CD-ROM) handed it its modules; it prints a marker,
 * each module's size, FNV-1a checksum and name, and the text of small text modules (boot.cfg) to COM1,
 * then ends QEMU through the isa-debug-exit device. Built by test/e2e/guest.ts with gcc -m32.
 */
typedef unsigned int u32;
typedef unsigned char u8;
typedef unsigned short u16;

#define MB_MAGIC 0x1BADB002u
#define MB_FLAGS 0x00000003u
__attribute__((section(".multiboot"), used, aligned(4)))
static const u32 multiboot_header[3] = { MB_MAGIC, MB_FLAGS, (u32)(-(MB_MAGIC + MB_FLAGS)) };

struct mb_info { u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr; };
struct mb_mod { u32 start, end, string, reserved; };

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void putc(char c) {
  while (!(inb(0x3F8 + 5) & 0x20)) {}
  outb(0x3F8, (u8)c);
}
static void puts(const char *s) { while (*s) putc(*s++); }
static void puthex(u32 v) { for (int i = 28; i >= 0; i -= 4) putc("0123456789abcdef"[(v >> i) & 15]); }
static void putdec(u32 v) { char b[12]; int n = 0; do { b[n++] = (char)('0' + v % 10); v /= 10; } while (v); while (n) putc(b[--n]); }

void kmain(u32 magic, struct mb_info *info) {
  outb(0x3F8 + 1, 0x00); outb(0x3F8 + 3, 0x80); outb(0x3F8 + 0, 0x01); outb(0x3F8 + 1, 0x00); outb(0x3F8 + 3, 0x03); outb(0x3F8 + 2, 0xC7);
  puts("\r\nNETBOOT-TEST-KERNEL magic="); puthex(magic);
  if (magic != 0x2BADB002u) { puts(" not multiboot\r\n"); goto out; }
  puts(" cmdline=");
  if ((info->flags & 4) && info->cmdline) puts((const char *)info->cmdline);
  u32 n = (info->flags & 8) ? info->mods_count : 0;
  puts(" modules="); putdec(n); puts("\r\n");
  struct mb_mod *m = (struct mb_mod *)info->mods_addr;
  for (u32 i = 0; i < n; i++) {
    const u8 *p = (const u8 *)m[i].start;
    u32 len = m[i].end - m[i].start, h = 0x811c9dc5u;
    for (u32 k = 0; k < len; k++) { h ^= p[k]; h *= 0x01000193u; }
    puts("module "); putdec(i); puts(" size="); putdec(len); puts(" fnv="); puthex(h); puts(" name=");
    if (m[i].string) puts((const char *)m[i].string);
    puts("\r\n");
    /* A text module (boot.cfg) is shown too, so a test can read what the loader read. */
    if (len < 8192) {
      int text = 1;
      for (u32 k = 0; k < len; k++) if (p[k] != '\n' && p[k] != '\r' && p[k] != '\t' && (p[k] < 32 || p[k] > 126)) { text = 0; break; }
      if (text) { for (u32 k = 0; k < len; k++) { if (p[k] == '\n') { puts("\r\n"); } else if (p[k] != '\r') { if (k == 0 || p[k - 1] == '\n') puts("| "); putc((char)p[k]); } } puts("\r\n"); }
    }
  }
out:
  puts("NETBOOT-TEST-KERNEL-DONE\r\n");
  outb(0xf4, 0x10); /* isa-debug-exit: QEMU exits with status 0x21 */
  for (;;) __asm__ volatile("cli; hlt");
}

__asm__(".section .bss\n.align 16\nstack_bottom: .skip 16384\nstack_top:\n"
        ".section .text\n.global _start\n_start:\n mov $stack_top, %esp\n push %ebx\n push %eax\n call kmain\n1: hlt\n jmp 1b\n");
