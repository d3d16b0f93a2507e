"""Helpers shared by the test modules (fixtures live in ``tests/conftest.py``).

- ``forms``: the example form of each template (``examples/`` at the top), the template keys;
- ``data``: an initialised data folder (local CA, demo parties);
- ``cli``: the installed ``countersign`` command;
- ``pdf``: rendered PDFs and the text poppler extracts from them;
- ``external``: signing as a party's own tool would, outside the project's code;
- ``pki``: a real test PKI (certomancer) with OCSP, CRLs and a TSA on loopback;
- ``mail``: an SMTP server (aiosmtpd) on loopback that keeps what it receives;
- ``service``: ``countersign serve`` started on a free port, stopped afterwards;
- ``net``: free loopback ports;
- ``s3``: ``moto_server`` as a real S3 API on loopback, and settings for a bucket of it;
- ``docx_samples``: hostile and unusual .docx files;
- ``processes``: the test run's own descendant processes, to find any left behind.
"""
