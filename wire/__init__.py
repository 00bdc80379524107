"""The contract that button, host and centre speak: frames and commands, the messages every
channel carries, and their codecs (HTTPS JSON, SIA DC-09, the MSA1 and AML SMS forms). Host,
centre and simulator import it; it imports none of them."""
