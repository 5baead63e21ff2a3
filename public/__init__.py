"""The public side: static pages anyone can open without a server (assets/verify.html, the draw verifier).

A package only so that the assets are installed with the code (pyproject package-data)."""
