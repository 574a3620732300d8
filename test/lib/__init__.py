# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers for the tcpcp pytest suite."""
