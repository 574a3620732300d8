/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The BPF object files (bpf/gate.bpf.c, bpf/carry.bpf.c, bpf/clamp.bpf.c, bpf/skip.bpf.c, built by clang)
 * inside the library, so that no file has to be found at run time. */
	.section .rodata
	.balign 8
	.globl tcpcp_bpf_obj
	.hidden tcpcp_bpf_obj
tcpcp_bpf_obj:
	.incbin BPF_OBJ
	.globl tcpcp_bpf_obj_end
	.hidden tcpcp_bpf_obj_end
tcpcp_bpf_obj_end:
	.balign 8
	.globl tcpcp_carry_obj
	.hidden tcpcp_carry_obj
tcpcp_carry_obj:
	.incbin CARRY_OBJ
	.globl tcpcp_carry_obj_end
	.hidden tcpcp_carry_obj_end
tcpcp_carry_obj_end:
	.balign 8
	.globl tcpcp_clamp_obj
	.hidden tcpcp_clamp_obj
tcpcp_clamp_obj:
	.incbin CLAMP_OBJ
	.globl tcpcp_clamp_obj_end
	.hidden tcpcp_clamp_obj_end
tcpcp_clamp_obj_end:
	.balign 8
	.globl tcpcp_skip_obj
	.hidden tcpcp_skip_obj
tcpcp_skip_obj:
	.incbin SKIP_OBJ
	.globl tcpcp_skip_obj_end
	.hidden tcpcp_skip_obj_end
tcpcp_skip_obj_end:
	.section .note.GNU-stack,"",%progbits
