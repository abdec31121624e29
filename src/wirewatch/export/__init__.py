"""wirewatch.export"""
