/** RFC 4578 §2.1 processor architecture types (option 93), as the IANA registry lists them. */
export const Arch = {
  X86Bios: 0, // Intel x86PC
  EfiIa32: 6, // EFI IA32
  EfiX64Bc: 7, // EFI BC (edk2/OVMF x86-64 sends 7)
  EfiX64: 9, // EFI x86-64 (some firmwares send 9 for the same thing)
  EfiArm64: 11, // ARM 64-bit UEFI
  EfiX64Http: 16, // x64 UEFI HTTP boot (edk2 HttpBootDxe)
  EfiArm64Http: 19, // ARM64 UEFI HTTP boot
} as const;
