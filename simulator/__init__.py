"""CounselSim: counseling-skills training simulator."""
