/* SPDX-License-Identifier: MIT */
/*
 * vmce_guest_image.h - the built-in test guest as a flat binary (docs/guest.md), generated at
 * build time from guest/.  Load it at guest-physical 0x100000 and start every vCPU at its first
 * byte as the boot protocol says.  Link the CMake target vmce_guest_image.
 */
#ifndef VMCE_GUEST_IMAGE_H
#define VMCE_GUEST_IMAGE_H

#ifdef __cplusplus
extern "C" {
#endif

#define VMCE_GUEST_LOAD_ADDR 0x100000ul

extern const unsigned char vmce_guest_image[];
extern const unsigned long vmce_guest_image_size;

#ifdef __cplusplus
}
#endif

#endif /* VMCE_GUEST_IMAGE_H */
