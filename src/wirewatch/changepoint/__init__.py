"""wirewatch.changepoint"""
