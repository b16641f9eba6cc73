"""hakwatch's command line: thin click commands over the modules that do the work."""

import click

from hakwatch import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hakwatch")
def main():
    """Watch the hakmem allocator and the memory syscalls it causes, with eBPF."""
